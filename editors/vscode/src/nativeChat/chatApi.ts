/**
 * The part of VS Code's chat and language-model API (stable since Code 1.90 and 1.104) that the
 * native chat uses, declared here because the extension still supports Code 1.82 (its
 * `@types/vscode` cannot name them), plus the feature detection that decides what to register.
 * Nothing here imports `vscode`, so the tests run it in plain Node.
 */

/** VS Code's `CancellationToken`. */
export interface Token {
  readonly isCancellationRequested: boolean;
  onCancellationRequested(listener: () => unknown): { dispose(): unknown };
}

/** `vscode.Uri`, as far as the native chat looks at it. */
export interface UriLike {
  readonly scheme: string;
  readonly fsPath: string;
  toString(): string;
}

/** `LanguageModelChatMessageRole`: User 1, Assistant 2 (and System 3 where Code sends it). */
export const Role = { user: 1, assistant: 2, system: 3 } as const;

/** A message VS Code hands a provider (`LanguageModelChatRequestMessage`). */
export interface RequestMessage {
  readonly role: number;
  readonly content: readonly unknown[];
  readonly name?: string | undefined;
}

/** `LanguageModelChatInformation`. */
export interface ModelInformation {
  readonly id: string;
  readonly name: string;
  readonly family: string;
  readonly version: string;
  readonly maxInputTokens: number;
  readonly maxOutputTokens: number;
  readonly tooltip?: string;
  readonly detail?: string;
  readonly capabilities: { readonly imageInput?: boolean; readonly toolCalling?: boolean | number };
}

/** `LanguageModelChatProvider`. */
export interface ModelProvider {
  readonly onDidChangeLanguageModelChatInformation?: (listener: () => unknown) => { dispose(): unknown };
  provideLanguageModelChatInformation(options: { silent: boolean }, token: Token): Promise<ModelInformation[]>;
  provideLanguageModelChatResponse(
    model: ModelInformation,
    messages: readonly RequestMessage[],
    options: unknown,
    progress: { report(part: unknown): void },
    token: Token,
  ): Promise<void>;
  provideTokenCount(model: ModelInformation, text: string | RequestMessage, token: Token): Promise<number>;
}

/** `LanguageModelChat`, the model a participant gets as `request.model`. */
export interface LanguageModel {
  readonly id: string;
  readonly vendor: string;
  readonly name: string;
  readonly family: string;
  sendRequest(messages: unknown[], options?: object, token?: Token): Thenable<{ text: AsyncIterable<string> }>;
}

/** `ChatPromptReference`: something the person attached (`#file`, `#selection`). */
export interface PromptReference {
  readonly id: string;
  readonly value: unknown;
  readonly modelDescription?: string;
}

/** `ChatRequest`. */
export interface ChatRequest {
  readonly prompt: string;
  readonly command: string | undefined;
  readonly references: readonly PromptReference[];
  readonly model?: LanguageModel;
}

/** `ChatResult`; `metadata` is ours (see participant.ts). */
export interface ChatResultLike {
  errorDetails?: { message: string };
  metadata?: Record<string, unknown>;
}

/** A turn of `ChatContext.history`: a `ChatRequestTurn` (prompt) or a `ChatResponseTurn` (response, result). */
export interface HistoryTurn {
  readonly participant: string;
  readonly command?: string | undefined;
  readonly prompt?: string;
  readonly response?: readonly unknown[];
  readonly result?: ChatResultLike;
}

/** `ChatContext`. */
export interface ChatContext {
  readonly history: readonly HistoryTurn[];
}

/** `ChatResponseStream`. */
export interface ResponseStream {
  markdown(value: string): void;
  anchor(value: unknown, title?: string): void;
  button(command: { command: string; title: string; arguments?: unknown[] }): void;
  reference(value: unknown): void;
  progress(value: string): void;
}

/** `ChatFollowup`. */
export interface Followup {
  prompt: string;
  label?: string;
  command?: string;
}

/** `ChatParticipant`. */
export interface ChatParticipant {
  iconPath?: unknown;
  followupProvider?: { provideFollowups(result: ChatResultLike, context: ChatContext, token: Token): Followup[] };
  dispose(): void;
}

export type ChatHandler = (request: ChatRequest, context: ChatContext, response: ResponseStream, token: Token) => Promise<ChatResultLike>;

/** The namespaces and classes looked up on the `vscode` module at run time. */
export interface NativeChatApi {
  chat: { createChatParticipant(id: string, handler: ChatHandler): ChatParticipant };
  lm: {
    registerLanguageModelChatProvider(vendor: string, provider: ModelProvider): { dispose(): unknown };
    selectChatModels(selector: { vendor?: string; id?: string }): Thenable<LanguageModel[]>;
  };
  LanguageModelTextPart: new (value: string) => unknown;
  LanguageModelChatMessage: { User(content: string): unknown; Assistant(content: string): unknown };
}

/** What this VS Code offers; each part is registered only where it exists. */
export interface NativeChatFeatures {
  /** `vscode.chat.createChatParticipant` (Code 1.90+): the `@sage` participant. */
  participant: boolean;
  /** `vscode.lm.registerLanguageModelChatProvider` (Code 1.104+): the `sage` models in the picker. */
  provider: boolean;
  /** Stop reaches a provider's cancellation token (Code 1.127+, vscode#277872). */
  providerStop: boolean;
}

function hasFunction(owner: unknown, name: string): boolean {
  return typeof owner === 'object' && owner !== null && typeof (owner as Record<string, unknown>)[name] === 'function';
}

/** `[major, minor]` of a version like `1.139.1` or `1.127.0-insider`; [0, 0] when unreadable. */
export function majorMinor(version: string): [number, number] {
  const match = /^(\d+)\.(\d+)/.exec(version);
  return match ? [Number(match[1]), Number(match[2])] : [0, 0];
}

/** Which native chat features the `vscode` module `api` of Code `version` has (feature detection, not the version). */
export function nativeChatFeatures(api: unknown, version: string): NativeChatFeatures {
  const module = (typeof api === 'object' && api !== null ? api : {}) as Record<string, unknown>;
  const participant = hasFunction(module.chat, 'createChatParticipant');
  const provider =
    hasFunction(module.lm, 'registerLanguageModelChatProvider') &&
    hasFunction(module.lm, 'selectChatModels') &&
    typeof module.LanguageModelTextPart === 'function';
  const [major, minor] = majorMinor(version);
  return { participant, provider, providerStop: provider && (major > 1 || (major === 1 && minor >= 127)) };
}
