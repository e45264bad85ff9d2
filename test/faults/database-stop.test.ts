// A fast shutdown of PostgreSQL (sessions ended with 57P01, then the server exits) under the three services as
// processes, under load: codes, deadlines, readiness, connections, exact counts and shutdown (database-outage.ts).
import { describeDatabaseOutage } from './database-outage.ts';

describeDatabaseOutage('stop');
