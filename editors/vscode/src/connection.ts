import type { CancellationToken } from 'vscode-jsonrpc';

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
