/**
 * The host side of the chat panel: sends questions with `sage/chat`, turns the streamed chunks,
 * the result and the failures into panel actions, and keeps the authoritative panel state.
 * It needs only a `SageConnection`, so the tests drive it over a plain JSON-RPC connection.
 */
import { randomUUID } from 'node:crypto';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import { request, type Disposable, type SageConnection } from './connection';
import { attachedChips } from './editorContext';
import { errorCode, errorLine } from './errors';
import type { PanelAction, PanelState } from './panelState';
import { initialState, isBusy, reduce, stateFromHistory } from './panelState';
import type { WebviewMessage } from './panelMessages';
import { ErrorCodes, Methods } from './protocol';
import type { ChatChunk, ChatParams, ContextRef } from './protocol';

/** What the panel's buttons do in the editor; VS Code provides it, tests stub it. */
export interface EditorActions {
  copy(code: string): Promise<void>;
  insert(code: string): Promise<void>;
  openSource(path: string): Promise<void>;
  /** The path the workspace shows for the document `uri` (an attached document's chip). */
  relativePath(uri: string): string;
}

/** One chat conversation and the panel showing it. */
export class ChatController implements Disposable {
  private state: PanelState;
  private inFlight: CancellationTokenSource | undefined;
  private readonly listeners = new Set<(action: PanelAction) => void>();
  private readonly chunks: Disposable;

  /** `newChatId` makes the id of each conversation (random by default). */
  constructor(
    private readonly connection: SageConnection,
    private readonly editor: EditorActions,
    private readonly newChatId: () => string = randomUUID,
  ) {
    this.state = initialState(newChatId());
    this.chunks = connection.onNotification(Methods.chatChunk, (chunk: ChatChunk) => {
      if (chunk.chatId === this.state.chatId) {
        this.dispatch({ type: 'chunk', chunk });
      }
    });
  }

  /** The panel's state now. */
  get current(): PanelState {
    return this.state;
  }

  /** Calls `listener` with every action, after the host state took it. */
  onAction(listener: (action: PanelAction) => void): Disposable {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  /** Does what a webview message asks; `ready` is answered with the whole state. */
  async handleMessage(message: WebviewMessage): Promise<void> {
    switch (message.type) {
      case 'ready':
        this.dispatch({ type: 'restore', state: this.state });
        return;
      case 'send':
        await this.ask(message.text);
        return;
      case 'stop':
        this.stop();
        return;
      case 'newChat':
        await this.newChat();
        return;
      case 'copy':
        return this.editor.copy(message.code);
      case 'insert':
        return this.editor.insert(message.code);
      case 'openSource':
        return this.editor.openSource(message.path);
    }
  }

  /**
   * Asks `question` in the conversation, with the editor documents of `context` attached (the
   * server reads them), and resolves, once the request ended, to the action that ended the turn
   * (`finished`, `cancelled` or `failed`); undefined when the question is blank or an answer is
   * still being written.
   */
  async ask(question: string, context: ContextRef[] = []): Promise<PanelAction | undefined> {
    if (!question.trim() || isBusy(this.state)) {
      return undefined;
    }
    const { chatId } = this.state;
    const source = new CancellationTokenSource();
    this.inFlight = source;
    const relativePath = (uri: string): string => this.editor.relativePath(uri);
    this.dispatch({ type: 'asked', question, attached: attachedChips(context, relativePath) });
    let end: PanelAction;
    try {
      const params: ChatParams = { message: question, chatId, ...(context.length ? { context } : {}) };
      const result = await request(this.connection, Methods.chat, params, source.token);
      end = { type: 'finished', result, ...(result.context ? { attached: attachedChips(result.context, relativePath) } : {}) };
    } catch (error) {
      const cancelled = source.token.isCancellationRequested || errorCode(error) === ErrorCodes.requestCancelled;
      end = cancelled ? { type: 'cancelled', chatId } : { type: 'failed', chatId, message: errorLine(error) };
    } finally {
      if (this.inFlight === source) {
        this.inFlight = undefined;
      }
      source.dispose();
    }
    this.dispatch(end);
    return end;
  }

  /** Stops the answer being written (`$/cancelRequest`); what arrived stays. */
  stop(): void {
    this.inFlight?.cancel();
  }

  /** Starts a new conversation; the old one is stopped and forgotten on the server. */
  async newChat(): Promise<void> {
    this.stop();
    const old = this.state;
    this.dispatch({ type: 'newChat', chatId: this.newChatId() });
    if (old.turns.length > 0) {
      await request(this.connection, Methods.chatReset, { chatId: old.chatId }).catch(() => undefined);
    }
  }

  /**
   * Takes back a conversation a webview held before a window reload: as the server's history
   * tells it when the server still has it, else as the webview saved it (a new server process
   * starts with no conversations).
   */
  async resume(saved: PanelState): Promise<void> {
    let state = saved;
    try {
      const { messages } = await request(this.connection, Methods.chatHistory, { chatId: saved.chatId });
      if (messages.length > 0) {
        const fromServer = stateFromHistory(saved.chatId, messages);
        state = { ...fromServer, nextTurnId: Math.max(fromServer.nextTurnId, saved.nextTurnId) };
      }
    } catch {
      // The server does not know the conversation (or is not running): keep the saved one.
    }
    if (this.state.turns.length === 0 && !isBusy(this.state)) {
      this.dispatch({ type: 'restore', state });
    }
  }

  /** Stops listening to the connection. */
  dispose(): void {
    this.stop();
    this.chunks.dispose();
    this.listeners.clear();
  }

  private dispatch(action: PanelAction): void {
    this.state = reduce(this.state, action);
    for (const listener of this.listeners) {
      listener(action);
    }
  }
}
