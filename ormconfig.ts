import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { loadConfigFromProcess } from './src/config/config.module';
import { appDataSourceOptions } from './src/app.data-source';

/** The DataSource the TypeORM CLI uses (npm run migration:run|revert|show), from the same env as the service. */
const config = loadConfigFromProcess();
export default new DataSource(appDataSourceOptions(config.database, false));
