import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { loadConfigFromProcess } from './src/config/config.module';
import { buildDataSourceOptions } from './src/database/data-source-options';

/** The DataSource the TypeORM CLI uses (npm run migration:run|revert|show), from the same env as the service. */
const config = loadConfigFromProcess();
export default new DataSource(buildDataSourceOptions(config.database, false));
