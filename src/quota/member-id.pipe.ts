import { idParamPipe } from '../common/id-param.pipe';

export const MemberIdPipe = idParamPipe('Member');
export const ConfigIdPipe = idParamPipe('Quota config');
export const HoldIdPipe = idParamPipe('Hold');
