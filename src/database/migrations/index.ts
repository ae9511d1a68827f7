import { InitialSchema1763900000000 } from './1763900000000-InitialSchema';

/** Every migration, oldest first; listed here so the built service and the CLI need no file globbing. */
export const MIGRATIONS = [InitialSchema1763900000000];
