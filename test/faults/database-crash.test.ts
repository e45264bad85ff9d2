// A PostgreSQL crash (immediate shutdown: every backend killed, no checkpoint) under the three services as
// processes, under load: codes, deadlines, readiness, connections, exact counts and shutdown (database-outage.ts).
import { describeDatabaseOutage } from './database-outage.ts';

describeDatabaseOutage('crash');
