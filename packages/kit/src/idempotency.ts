// Idempotent mutations (as Stripe's idempotency keys): the first call with a request_id stores the encoded
// answer in the same transaction as its effect; a retry with the same id gets that answer back; the same
// id with other parameters is refused. Concurrent duplicates are serialised by the primary key: the second
// insert waits for the first transaction and then finds its row.
import { createHash } from 'node:crypto';
import { type DescMessage, fromBinary, type MessageShape, toBinary } from '@bufbuild/protobuf';
import { type Em, queryBound } from './db.ts';
import { AlreadyExistsError, InvalidArgumentError } from './errors.ts';

/** Longest request_id accepted. */
export const MAX_REQUEST_ID_LENGTH = 128;

/** Checks a request_id: required, 1-128 printable ASCII characters. */
export function validateRequestId(requestId: string): void {
  if (!requestId || requestId.length > MAX_REQUEST_ID_LENGTH || !/^[\x21-\x7e]+$/.test(requestId)) {
    throw new InvalidArgumentError('request_id must be 1-128 printable ASCII characters', [
      { field: 'request_id', description: 'required: 1-128 printable ASCII characters' },
    ]);
  }
}

/** The request of a mutating RPC: any protobuf message with a request_id. */
export interface IdempotentRequest<Schema extends DescMessage> {
  /** The request's schema (to fingerprint it). */
  schema: Schema;
  /** The request. */
  message: MessageShape<Schema> & { requestId: string };
}

/**
 * Runs `work` once per (scope, request_id) inside the caller's transaction `em`, storing its response;
 * replays the stored response on a retry. `scope` is usually the RPC's full name.
 */
export async function runIdempotent<Req extends DescMessage, Res extends DescMessage>(
  em: Em,
  scope: string,
  request: IdempotentRequest<Req>,
  responseSchema: Res,
  work: () => Promise<MessageShape<Res>>,
): Promise<MessageShape<Res>> {
  const { requestId } = request.message;
  validateRequestId(requestId);
  const fingerprint = createHash('sha256')
    .update(toBinary(request.schema, { ...request.message, requestId: '' }))
    .digest('base64url');
  const inserted = await queryBound<{ request_id: string }>(
    em,
    `insert into idempotency_key (scope, request_id, fingerprint) values ($1, $2, $3)
     on conflict do nothing returning request_id`,
    [scope, requestId, fingerprint],
  );
  if (inserted.length === 0) {
    const [previous] = await queryBound<{ fingerprint: string; response: Uint8Array | null }>(
      em,
      'select fingerprint, response from idempotency_key where scope = $1 and request_id = $2',
      [scope, requestId],
    );
    if (!previous || previous.fingerprint !== fingerprint || !previous.response) {
      throw new AlreadyExistsError(
        'IDEMPOTENCY_KEY_REUSED',
        'this request_id was already used with different parameters',
      );
    }
    return fromBinary(responseSchema, new Uint8Array(previous.response));
  }
  const response = await work();
  await queryBound(em, 'update idempotency_key set response = $1 where scope = $2 and request_id = $3', [
    Buffer.from(toBinary(responseSchema, response)),
    scope,
    requestId,
  ]);
  return response;
}
