/** Server errors turned into one line a person can read. */
import { ErrorCodes } from './protocol';

interface RpcErrorLike {
  code: number;
  message: string;
  data?: unknown;
}

function isRpcError(error: unknown): error is RpcErrorLike {
  return typeof error === 'object' && error !== null && typeof (error as RpcErrorLike).code === 'number';
}

function field(data: unknown, key: string): unknown {
  return typeof data === 'object' && data !== null ? (data as Record<string, unknown>)[key] : undefined;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function lastLine(text: string): string | undefined {
  return text.split('\n').map(oneLine).filter(Boolean).at(-1);
}

/** The JSON-RPC error code of `error`, if it has one. */
export function errorCode(error: unknown): number | undefined {
  return isRpcError(error) ? error.code : undefined;
}

/**
 * One readable line for a failed request: the server's message plus what its `data` adds
 * (the hint of -32001/-32002 when the message lacks it, the last log line of -32003, the
 * errors of -32004).
 */
export function errorLine(error: unknown): string {
  if (!isRpcError(error)) {
    return oneLine(error instanceof Error ? error.message : String(error));
  }
  const message = oneLine(error.message);
  const extra: string[] = [];
  const hint = field(error.data, 'hint');
  if (typeof hint === 'string' && hint && !message.includes(oneLine(hint))) {
    extra.push(oneLine(hint));
  }
  const logTail = field(error.data, 'logTail');
  if (error.code === ErrorCodes.serviceFailed && typeof logTail === 'string') {
    const line = lastLine(logTail);
    if (line) {
      extra.push(`log: ${line}`);
    }
  }
  const errors = field(error.data, 'errors');
  if (error.code === ErrorCodes.pipelineFailed && Array.isArray(errors) && errors.length > 0) {
    extra.push(errors.map((e) => oneLine(String(e))).join('; '));
  }
  return [message, ...extra].join(' — ');
}
