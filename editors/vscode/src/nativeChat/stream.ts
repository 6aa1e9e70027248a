/**
 * One `sage/chat` request whose `sage/chatChunk` deltas are handed on as they arrive, with the
 * caller's cancellation turned into `$/cancelRequest` (the server then closes the stream to the
 * model). Works over any `SageConnection`: the extension's client, or a plain JSON-RPC
 * connection in the tests.
 */
import { CancellationTokenSource } from 'vscode-jsonrpc';
import { request, type SageConnection } from '../connection';
import { errorCode } from '../errors';
import { ErrorCodes, Methods, type ChatChunk, type ChatParams, type ChatResult, type Requests } from '../protocol';
import type { Token } from './chatApi';

/** `sage/chat` params of a conversation the caller names. */
export interface NativeChatParams extends ChatParams {
  chatId: string;
}

/** A JSON-RPC token that `token` (VS Code's, if any) cancels; dispose the result when done. */
function linkedSource(token: Token | undefined): { source: CancellationTokenSource; dispose(): void } {
  const source = new CancellationTokenSource();
  const link = token?.onCancellationRequested(() => { source.cancel(); });
  if (token?.isCancellationRequested) {
    source.cancel();
  }
  return { source, dispose: () => { link?.dispose(); source.dispose(); } };
}

/** Sends a request, always with a token (cancelled with `token` when one is given). */
export async function sendLinked<M extends keyof Requests>(connection: SageConnection, method: M, params: Requests[M][0], token?: Token): Promise<Requests[M][1]> {
  const linked = linkedSource(token);
  try {
    return await request(connection, method, params, linked.source.token);
  } finally {
    linked.dispose();
  }
}

/**
 * Sends `params`, calls `onDelta` with each delta of its conversation in order, and resolves to
 * the result, or to undefined when `token` stopped it (the partial answer stays with the server).
 */
export async function streamChat(
  connection: SageConnection,
  params: NativeChatParams,
  onDelta: (delta: string) => void,
  token?: Token,
): Promise<ChatResult | undefined> {
  const linked = linkedSource(token);
  const { source } = linked;
  let next = 0;
  const chunks = connection.onNotification(Methods.chatChunk, (chunk: ChatChunk) => {
    if (chunk.chatId === params.chatId && chunk.index >= next) {
      next = chunk.index + 1;
      onDelta(chunk.delta);
    }
  });
  try {
    if (source.token.isCancellationRequested) {
      return undefined;
    }
    return await request(connection, Methods.chat, params, source.token);
  } catch (error) {
    if (source.token.isCancellationRequested || errorCode(error) === ErrorCodes.requestCancelled) {
      return undefined;
    }
    throw error;
  } finally {
    chunks.dispose();
    linked.dispose();
  }
}
