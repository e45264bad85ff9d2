// `billing events ...`: an operator's view of a service's event plumbing (billing.admin.v1.AdminService).
import { randomUUID } from 'node:crypto';
import type { AdminService } from '@billing/proto/billing/admin/v1/admin_service_pb';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { Client } from '@connectrpc/connect';
import { CliFailure, EXIT, shown } from './failure.ts';

/** `billing events parked [--consumer C]`: every parked message, one line each. */
export async function listParked(client: Client<typeof AdminService>, consumer: string): Promise<string[]> {
  const lines: string[] = [];
  let pageToken = '';
  do {
    const page = await client.listParkedEvents({ consumer, pageSize: 500, pageToken });
    for (const p of page.parkedEvents) {
      const at = p.parkTime ? timestampDate(p.parkTime).toISOString() : '';
      lines.push(`${at}  ${p.consumer}  ${p.eventId}  ${p.subject}  attempts=${p.attempts}  ${p.error}`);
    }
    pageToken = page.nextPageToken;
  } while (pageToken);
  return lines.length > 0 ? lines : ['no parked events'];
}

/** `billing events replay CONSUMER EVENT_ID`: runs a parked message through its consumer again. */
export async function replayParked(client: Client<typeof AdminService>, consumer: string, eventId: string) {
  await client.replayParkedEvent({ requestId: `cli-${randomUUID()}`, consumer, eventId });
  return [`replayed ${eventId} through ${consumer}`];
}

/** The time an option gives, or the CLI failure naming it. */
function timeOption(option: string, value: string): Date {
  const time = new Date(value);
  if (Number.isNaN(time.getTime())) {
    throw new CliFailure(
      EXIT.invalid,
      `--${option}: not a time: ${shown(value)} (use ISO 8601, e.g. 2026-11-25T10:00:00Z)`,
    );
  }
  return time;
}

/**
 * `billing events republish --since TIME --until TIME`: publishes again what the service recorded from since
 * until until (at most 24 hours; the service refuses a second within 10 minutes).
 */
export async function republish(client: Client<typeof AdminService>, since: string, until: string): Promise<string[]> {
  const sinceTime = timestampFromDate(timeOption('since', since));
  const untilTime = timestampFromDate(timeOption('until', until));
  const { count } = await client.republishEvents({ requestId: `cli-${randomUUID()}`, sinceTime, untilTime });
  return [`${count} events will be published again`];
}
