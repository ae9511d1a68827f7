import { idParamPipe } from '../common/id-param.pipe';

export const OperationIdPipe = idParamPipe('Operation');
