// The one way a service's RPC changes state: in one transaction, idempotent by request_id, with the
// outbox relay woken after the commit. Handlers call `mutate` and cannot forget any of the three.
import {
  create,
  type DescMessage,
  type DescMethodUnary,
  type MessageInitShape,
  type MessageShape,
} from '@bufbuild/protobuf';
import type { Em } from './db.ts';
import { runIdempotent } from './idempotency.ts';
import type { ServiceContext } from './service-context.ts';

/** What a mutation's work receives. */
export interface MutationScope {
  /** The transaction. */
  em: Em;
  /** The time of the change, from the service clock. */
  now: Date;
  /** The request's idempotency key, carried into events. */
  requestId: string;
}

/** Runs the work of a mutating RPC once per request_id and returns its (possibly replayed) response. */
export async function mutate<I extends DescMessage, O extends DescMessage>(
  context: Pick<ServiceContext, 'db' | 'relay' | 'clock'>,
  method: DescMethodUnary<I, O>,
  request: MessageShape<I> & { requestId: string },
  work: (scope: MutationScope) => Promise<MessageInitShape<O>>,
): Promise<MessageShape<O>> {
  const scope = `${method.parent.typeName}/${method.name}`;
  const response = await context.db.transaction((em) =>
    runIdempotent(em, scope, { schema: method.input, message: request }, method.output, async () =>
      create(method.output, await work({ em, now: context.clock.now(), requestId: request.requestId })),
    ),
  );
  context.relay.notify();
  return response;
}
