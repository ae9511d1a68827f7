import { idParamPipe } from '../common/id-param.pipe';

export const UserIdPipe = idParamPipe('User');
