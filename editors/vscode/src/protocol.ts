/**
 * Editor protocol v1 as the extension uses it: method names, payloads and error codes
 * (see docs/protocol.md). Nothing here depends on VS Code, so tests run it in plain Node.
 */
import type { WorkspaceEdit } from 'vscode-languageclient';

/** The `sage/*` requests and notifications the extension sends or handles. */
export const Methods = {
  chat: 'sage/chat',
  chatReset: 'sage/chat/reset',
  chatHistory: 'sage/chat/history',
  backendStatus: 'sage/backend/status',
  backendStart: 'sage/backend/start',
  backendStop: 'sage/backend/stop',
  services: 'sage/services',
  buildPipeline: 'sage/buildPipeline',
  chatChunk: 'sage/chatChunk',
  statusDidChange: 'sage/status/didChange',
} as const;

/** JSON-RPC error codes the server answers with. */
export const ErrorCodes = {
  requestCancelled: -32800,
  backendUnavailable: -32001,
  modelNotFound: -32002,
  serviceFailed: -32003,
  pipelineFailed: -32004,
} as const;

/** Params of `sage/chat`. */
export interface ChatParams {
  message: string;
  chatId?: string;
  index?: string | null;
  topK?: number;
  stream?: boolean;
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

/** Result of `sage/chat`. */
export interface ChatResult {
  chatId: string;
  turn: number;
  text: string;
  finishReason: 'stop' | 'length';
  sources: Source[];
  timings: { ttftMs: number; totalMs: number; tokensPerSecond: number };
  usage?: { promptTokens: number; completionTokens: number };
}

/** Result of `sage/chat/history`. */
export interface HistoryResult {
  messages: { role: 'user' | 'assistant'; content: string }[];
}

/** Backend states; the server sends idle/starting/ready/error, the contract also names the rest. */
export type BackendState = 'idle' | 'merging' | 'starting' | 'ready' | 'error' | 'stopped';

/** Params of the `sage/status/didChange` notification. */
export interface StatusChange {
  state: BackendState;
  backend: string;
  model: string | null;
  message?: string;
}

/** A live model service (an entry of `sage/services`, or `service` of the backend status). */
export interface ServiceInfo {
  name: string;
  servedModelName: string;
  port: number;
  pid: number | null;
  state: string;
  owned: boolean;
  holders: number;
  logPath: string;
  startedAt: number;
}

/** Result of `sage/backend/status`, `/start` and `/stop`. */
export interface BackendStatus extends StatusChange {
  endpoint?: string;
  service?: ServiceInfo;
  metrics?: { turns?: number; lastTtftMs?: number; lastTokensPerSecond?: number };
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

/** `capabilities.experimental.sage` of the initialize result. */
export interface SageCapabilities {
  version: number;
  methods: string[];
}
