// Reading the errors services answer with: the code, the ErrorInfo reason, the fields of a BadRequest.
import { BadRequestSchema, ErrorInfoSchema } from '@billing/proto/google/rpc/error_details_pb';
import { type Code, ConnectError } from '@connectrpc/connect';

/** The error a call fails with; throws if it succeeds. */
export async function rpcError(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error('the call succeeded');
}

/** How a call ended: `ok`, or the code it failed with. */
export async function outcome(call: Promise<unknown>): Promise<'ok' | Code> {
  try {
    await call;
    return 'ok';
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

/** The ErrorInfo reason of an error. */
export const reason = (err: ConnectError) => err.findDetails(ErrorInfoSchema)[0]?.reason;

/** The fields an INVALID_ARGUMENT error names, in order. */
export const violations = (err: ConnectError) =>
  err.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations.map((v) => v.field));
