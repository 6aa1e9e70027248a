/** How the backend's state reads in the status bar. */
import type { BackendState, StatusChange } from './protocol';

/**
 * What the status bar shows: the server's state, or a phase its message tells (the server
 * reports a merge as `starting` with a message that begins with "merging", and Stop Model as
 * `idle` with the message "stopped").
 */
type Phase = BackendState | 'merging' | 'stopped';

/** The status bar's text, tooltip and whether it shows an error. */
export interface StatusView {
  text: string;
  tooltip: string;
  error: boolean;
}

const ICONS: Record<Phase, string> = {
  idle: '$(circle-outline)',
  merging: '$(sync~spin)',
  starting: '$(sync~spin)',
  ready: '$(check)',
  error: '$(error)',
  stopped: '$(debug-stop)',
};

/** The phase to show for `status`. */
function phaseOf(status: StatusChange): Phase {
  if (status.state === 'starting' && /^merging/i.test(status.message ?? '')) {
    return 'merging';
  }
  if (status.state === 'idle' && status.message === 'stopped') {
    return 'stopped';
  }
  return status.state;
}

/** The view of `status`; undefined means no state is known yet. */
export function describeStatus(status: StatusChange | undefined): StatusView {
  if (!status) {
    return { text: '$(comment-discussion) Sage', tooltip: 'Sage: connecting to the language server…', error: false };
  }
  const state = phaseOf(status);
  const name = status.model ?? status.backend;
  const heading = `Sage (${status.backend}${status.model ? `, ${status.model}` : ''}): ${state}`;
  return {
    text: `${ICONS[state]} Sage: ${name} ${state}`,
    tooltip: status.message ? `${heading}\n${status.message}` : heading,
    error: state === 'error',
  };
}

/** The backends that launch a model service (a GPU, minutes): started only by Start Model or a question. */
const LAUNCHING_BACKENDS: ReadonlySet<string> = new Set(['vllm', 'finetune']);

/**
 * Whether the status bar should prepare the backend, so that it tells whether the server is
 * usable: a backend not prepared yet (`idle`, at start or after a settings change made way for
 * another; not `stopped` by the person) that launches nothing (mock: at once; an endpoint:
 * whether it answers).
 */
export function shouldPrepare(status: StatusChange): boolean {
  return status.state === 'idle' && status.message !== 'stopped' && !LAUNCHING_BACKENDS.has(status.backend);
}

/** The view when the language server is not there: it did not start, or it stopped. */
export function describeServerDown(reason: string): StatusView {
  return { text: '$(error) Sage: server stopped', tooltip: `Sage: ${reason}`, error: true };
}
