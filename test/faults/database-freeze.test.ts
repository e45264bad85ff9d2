// A frozen PostgreSQL (every process stopped by SIGSTOP: connections stay open and nothing answers) under the three services as
// processes, under load: codes, deadlines, readiness, connections, exact counts and shutdown (database-outage.ts).
import { describeDatabaseOutage } from './database-outage.ts';

describeDatabaseOutage('freeze');
