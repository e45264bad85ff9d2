// How an event type is declared: its subject, versioned type name and payload schema. Every event type of
// the platform is declared beside it, one file per producing service, so producers and consumers share one
// definition and no service reads another's code.
import type { DescMessage } from '@bufbuild/protobuf';

/** A kind of domain event: its subject (`billing.<service>.<aggregate>.<event>`), version and payload schema. */
export interface EventType<Schema extends DescMessage = DescMessage> {
  /** Logical subject without the environment prefix, e.g. `billing.catalog.plan.published`. */
  readonly subject: string;
  /** Versioned type name: the subject's last two parts and the version, e.g. `plan.published.v1`. */
  readonly type: string;
  /** The protobuf message of the payload. */
  readonly schema: Schema;
  /** The producing service (the subject's second part). */
  readonly producer: string;
}

const SUBJECT = /^billing\.([a-z]+)\.([a-z_]+)\.([a-z_]+)$/;

/** Declares an event type; the subject must read `billing.<service>.<aggregate>.<event>`. */
export function defineEvent<Schema extends DescMessage>(
  subject: string,
  schema: Schema,
  version = 1,
): EventType<Schema> {
  const match = SUBJECT.exec(subject);
  if (!match) throw new Error(`event subject ${subject} does not read billing.<service>.<aggregate>.<event>`);
  return { subject, schema, type: `${match[2]}.${match[3]}.v${version}`, producer: match[1] ?? '' };
}
