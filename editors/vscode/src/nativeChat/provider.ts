/**
 * The `sage` language model provider: the active backend's model and the store's finetuned
 * models in VS Code's model picker, for any participant. A request becomes one `sage/chat` in a
 * fresh server conversation (earlier messages folded into its message, retrieval off: the
 * caller composed the prompt), its deltas are reported as they arrive, and the caller's
 * cancellation sends `$/cancelRequest`.
 */
import { randomUUID } from 'node:crypto';
import * as vscode from 'vscode';
import type { SageConnection } from '../connection';
import { errorLine } from '../errors';
import { Methods, type BackendStatus, type StatusChange } from '../protocol';
import type { ModelInformation, ModelProvider, NativeChatApi, RequestMessage, Token } from './chatApi';
import { countTokens, foldMessages, plainMessages } from './messages';
import { backendOverride, modelList } from './models';
import { sendLinked, streamChat } from './stream';

/** `sage.finetuneModel` as the person set it (the server's default otherwise). */
export function activeFinetuneModel(): string | undefined {
  const name = vscode.workspace.getConfiguration('sage').get<string>('finetuneModel');
  return name?.trim() ? name : undefined;
}

/** The provider VS Code registers under the vendor `sage`. */
export class SageModelProvider implements ModelProvider, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  private status: BackendStatus | undefined;

  /** Fires when the list of models may have changed (a new server, another backend or model). */
  readonly onDidChangeLanguageModelChatInformation = this.changed.event;

  constructor(
    private readonly connection: SageConnection,
    private readonly api: NativeChatApi,
  ) {}

  /** Asks VS Code to list the models again. */
  refresh(): void {
    this.changed.fire();
  }

  /** Lists the models again when the backend, its model or its state (shown in the picker) changed. */
  statusChanged(change: StatusChange): void {
    const listed = this.status;
    if (change.backend !== listed?.backend || change.model !== listed.model || change.state !== listed.state) {
      this.refresh();
    }
  }

  /** The `backend` override of `sage/chat` for the picker model `id` (none for the active model). */
  overrideFor(id: string): Record<string, string> | undefined {
    return backendOverride(id, this.status, activeFinetuneModel());
  }

  async provideLanguageModelChatInformation(_options: { silent: boolean }, token: Token): Promise<ModelInformation[]> {
    const [status, store] = await Promise.all([
      sendLinked(this.connection, Methods.backendStatus, {}, token).catch(() => undefined),
      sendLinked(this.connection, Methods.models, {}, token).then((result) => result.models, () => []),
    ]);
    this.status = status;
    return modelList(status, store, activeFinetuneModel());
  }

  async provideLanguageModelChatResponse(
    model: ModelInformation,
    messages: readonly RequestMessage[],
    _options: unknown,
    progress: { report(part: unknown): void },
    token: Token,
  ): Promise<void> {
    const message = foldMessages(plainMessages(messages));
    const backend = this.overrideFor(model.id);
    const chatId = `vscode-lm-${randomUUID()}`;
    try {
      await streamChat(
        this.connection,
        { message, chatId, index: null, ...(backend ? { backend } : {}) },
        (delta) => { progress.report(new this.api.LanguageModelTextPart(delta)); },
        token,
      );
    } catch (error) {
      throw new Error(`Sage: ${errorLine(error)}`);
    } finally {
      // Each request is a conversation of its own: forget it on the server.
      void sendLinked(this.connection, Methods.chatReset, { chatId }).catch(() => undefined);
    }
  }

  provideTokenCount(_model: ModelInformation, text: string | RequestMessage): Promise<number> {
    return Promise.resolve(countTokens(text));
  }

  dispose(): void {
    this.changed.dispose();
  }
}
