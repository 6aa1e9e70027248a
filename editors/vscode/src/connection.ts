import type { CancellationToken } from 'vscode-jsonrpc';
import type { Requests } from './protocol';

/** Something that can be disposed, as both VS Code and vscode-jsonrpc define it. */
export interface Disposable {
  dispose(): void;
}

/**
 * The part of a JSON-RPC connection the chat needs. `LanguageClient` (in VS Code) and a
 * vscode-jsonrpc `MessageConnection` (in the tests) both satisfy it.
 */
export interface SageConnection {
  sendRequest<R>(method: string, params: unknown, token?: CancellationToken): Promise<R>;
  // P makes the overloads of LanguageClient and MessageConnection (handlers of `any`) fit.
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
  onNotification<P>(method: string, handler: (params: P) => void): Disposable;
}

/**
 * Sends the request `method` with its params, typed as protocol.ts's `Requests` map says. A
 * token is passed only when there is one: vscode-jsonrpc takes a trailing undefined for a
 * second param and would send `[params, null]`.
 */
export function request<M extends keyof Requests>(connection: SageConnection, method: M, params: Requests[M][0], token?: CancellationToken): Promise<Requests[M][1]> {
  return token ? connection.sendRequest(method, params, token) : connection.sendRequest(method, params);
}
