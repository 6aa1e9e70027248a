/**
 * Editor protocol v1 as the extension uses it: method names, payloads and error codes
 * (see docs/protocol.md). Nothing here depends on VS Code, so tests run it in plain Node.
 *
 * tests/editors/test_protocol_contract.py compares this file with sage_lsp/protocol.py: an
 * interface is named as its payload class there and lists every field the wire carries. It
 * holds declarations only (imports, `export const ... as const`, `export type`, `export
 * interface`), the subset that test parses.
 */
import type { Diagnostic, Range, WorkspaceEdit } from 'vscode-languageclient';

/** The `sage/*` requests and notifications the extension sends or handles. */
export const Methods = {
  chat: 'sage/chat',
  chatReset: 'sage/chat/reset',
  chatHistory: 'sage/chat/history',
  backendStatus: 'sage/backend/status',
  backendStart: 'sage/backend/start',
  backendStop: 'sage/backend/stop',
  models: 'sage/models',
  services: 'sage/services',
  buildPipeline: 'sage/buildPipeline',
  chatChunk: 'sage/chatChunk',
  statusDidChange: 'sage/status/didChange',
} as const;

/**
 * The commands of the server's code actions: `explain` is run by the extension (it opens the chat
 * with `[ContextRef]`), `fix` by the server (`workspace/executeCommand` with `[FixArgs]`).
 */
export const Commands = {
  explain: 'sage.explain',
  fix: 'sage.fix',
} as const;

/** JSON-RPC error codes the server answers with. */
export const ErrorCodes = {
  requestCancelled: -32800,
  backendUnavailable: -32001,
  modelNotFound: -32002,
  serviceFailed: -32003,
  pipelineFailed: -32004,
} as const;

/** The files the server treats as pipeline plans: these suffixes anywhere, YAML under the folder. */
export const PipelineFiles = {
  suffixes: ['.sage.yaml', '.sage.yml'],
  folder: 'pipelines',
} as const;

/** `{}`: the params of the methods that take none, and the result of `sage/chat/reset`. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- protocol.py's Empty, a payload without fields
export interface Empty {}

/** Params of `sage/chat`. */
export interface ChatParams {
  message: string;
  chatId?: string;
  index?: string | null;
  topK?: number;
  /** Settings that override the session's for this turn only (e.g. another finetuned model). */
  backend?: Record<string, unknown>;
  stream?: boolean;
  /** Editor documents or ranges the model sees with the question (read by the server). */
  context?: ContextRef[];
}

/**
 * A document, or a range of it (positions in the negotiated encoding), attached to a question;
 * also the argument of the `sage.explain` command.
 */
export interface ContextRef {
  uri: string;
  range?: Range;
  diagnostics?: Diagnostic[];
}

/** A document the model saw with the question; `truncated` when the `contextTokens` budget shortened it. */
export interface AttachedContext {
  uri: string;
  truncated: boolean;
  range?: Range;
}

/** Params of `sage/chat/reset` and `sage/chat/history`. */
export interface ChatIdParams {
  chatId: string;
}

/** Params of the `sage/chatChunk` notification. */
export interface ChatChunk {
  chatId: string;
  turn: number;
  index: number;
  delta: string;
}

/** A retrieved passage the answer may cite as `[n]`; `path` is relative to the ingested folder. */
export interface Source {
  n: number;
  title: string;
  path: string;
  heading: string;
  score: number;
  /** The document's `file:` URI, when the server knows the folder it was indexed from. */
  uri?: string;
}

/** How long a turn took. */
export interface Timings {
  ttftMs: number;
  totalMs: number;
  tokensPerSecond: number;
}

/** Token counts, when the model server reports them. */
export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

/** What was left out of the prompt to fit the model's context. */
export interface Trimmed {
  note: string;
  turns: number;
  passages: Source[];
  cutChars: number;
  contextTokens: number;
  reservedTokens: number;
  promptTokens: number;
}

/** Result of `sage/chat`. */
export interface ChatResult {
  chatId: string;
  turn: number;
  text: string;
  finishReason: 'stop' | 'length';
  timings: Timings;
  sources: Source[];
  usage?: Usage;
  trimmed?: Trimmed;
  context?: AttachedContext[];
}

/** One message of a conversation. */
export interface HistoryMessage {
  role: 'user' | 'assistant';
  content: string;
}

/** Result of `sage/chat/history`. */
export interface HistoryResult {
  messages: HistoryMessage[];
}

/**
 * Backend states. A merge is `starting` with a message that begins with "merging"; Stop Model
 * gives `idle` with the message "stopped".
 */
export type BackendState = 'idle' | 'starting' | 'ready' | 'error';

/** Params of the `sage/status/didChange` notification. */
export interface StatusChange {
  state: BackendState;
  backend: string;
  model: string | null;
  message?: string;
}

/** A model service of the registry: the one a managed backend holds (`service` of the backend status). */
export interface HeldService {
  name: string;
  servedModelName: string;
  port: number;
  pid: number | null;
  owned: boolean;
  holders: number;
  logPath: string;
  startedAt: number;
}

/** A live model service: an entry of `sage/services`, with its state. */
export interface ServiceInfo extends HeldService {
  /** `starting`, `ready`, `failed` or `stopping`. */
  state: string;
}

/** Result of `sage/backend/status`, `/start` and `/stop`. */
export interface BackendStatus extends StatusChange {
  endpoint?: string;
  service?: HeldService;
  /** Counters: `turns`, `lastTtftMs`, `lastTokensPerSecond`. */
  metrics?: Record<string, number>;
}

/** A finetuned model of the store: an entry of `sage/models`. */
export interface ModelInfo {
  name: string;
  baseModel: string | null;
  state: 'merged' | 'adapter' | 'checkpoints';
  path: string;
}

/** Result of `sage/models`. */
export interface ModelsResult {
  models: ModelInfo[];
}

/** Result of `sage/services`. */
export interface ServicesResult {
  services: ServiceInfo[];
}

/** Params of `sage/buildPipeline`. */
export interface BuildPipelineParams {
  description: string;
  name?: string;
  chatId?: string;
  targetUri?: string;
}

/** Result of `sage/buildPipeline`; `edit` is an LSP WorkspaceEdit when `targetUri` was given. */
export interface BuildPipelineResult {
  name: string;
  yaml: string;
  valid: boolean;
  errors: string[];
  attempts: number;
  edit?: WorkspaceEdit;
}

/** The argument of the `sage.fix` command: replace `range` with the model's fix. */
export interface FixArgs {
  uri: string;
  range: Range;
  diagnostics?: Diagnostic[];
  instruction?: string;
}

/** The result of `sage.fix`: `applied` is the editor's answer to the server's `workspace/applyEdit`. */
export interface FixResult {
  applied: boolean;
  text: string;
}

/** `capabilities.experimental.sage` of the initialize result. */
export interface SageCapabilities {
  version: number;
  methods: string[];
}

/** The requests the extension sends: `[params, result]` by method, as sage_lsp/server/routes.py declares them. */
export interface Requests {
  'sage/chat': [ChatParams, ChatResult];
  'sage/chat/reset': [ChatIdParams, Empty];
  'sage/chat/history': [ChatIdParams, HistoryResult];
  'sage/backend/status': [Empty, BackendStatus];
  'sage/backend/start': [Empty, BackendStatus];
  'sage/backend/stop': [Empty, BackendStatus];
  'sage/models': [Empty, ModelsResult];
  'sage/services': [Empty, ServicesResult];
  'sage/buildPipeline': [BuildPipelineParams, BuildPipelineResult];
}
