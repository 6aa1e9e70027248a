/**
 * The chat panel's state and the pure reducer that changes it. The host keeps the authoritative
 * copy (re-sent to a webview that is shown again); the webview applies the same actions to its
 * own copy as they arrive, so both always agree.
 */
import type { AttachedChip } from './editorContext';
import type { ChatChunk, ChatResult, HistoryResult, Source } from './protocol';

/** Where one turn stands. */
export type TurnStatus = 'streaming' | 'done' | 'cancelled' | 'error';

/** One question and its answer. */
export interface Turn {
  /** Local id, unique in the panel's life (keys the DOM). */
  id: number;
  question: string;
  /** The answer so far: the chunks received without a gap, or the final text. */
  answer: string;
  /** The chunk index the answer continues with. */
  nextIndex: number;
  /** Chunks that arrived ahead of a missing one, by index. */
  pending: Record<number, string>;
  /** The server's turn number, once known. */
  turn?: number;
  status: TurnStatus;
  sources: Source[];
  /** The editor documents sent with the question; once answered, as the server attached them. */
  attached?: AttachedChip[];
  finishReason?: 'stop' | 'length';
  /** Seconds the answer took, once finished. */
  seconds?: number;
  tokensPerSecond?: number;
  /** Why the turn failed (status `error`). */
  error?: string;
}

/** The last failure, as one line; `question` is set when the question is handed back to the input. */
export interface PanelError {
  message: string;
  question?: string;
}

/** The whole panel. */
export interface PanelState {
  chatId: string;
  turns: Turn[];
  nextTurnId: number;
  error?: PanelError;
}

/** Everything that changes the panel; the host sends these to the webview as they happen. */
export type PanelAction =
  | { type: 'asked'; question: string; attached?: AttachedChip[] }
  | { type: 'chunk'; chunk: ChatChunk }
  | { type: 'finished'; result: ChatResult; attached?: AttachedChip[] }
  | { type: 'cancelled'; chatId: string }
  | { type: 'failed'; chatId: string; message: string }
  | { type: 'newChat'; chatId: string }
  | { type: 'restore'; state: PanelState };

/** An empty conversation under `chatId`. */
export function initialState(chatId: string): PanelState {
  return { chatId, turns: [], nextTurnId: 1 };
}

/** The turn being answered, if any. */
function streamingTurn(state: PanelState): Turn | undefined {
  const last = state.turns.at(-1);
  return last?.status === 'streaming' ? last : undefined;
}

/** Whether an answer is being written (Stop applies, Send does not). */
export function isBusy(state: PanelState): boolean {
  return streamingTurn(state) !== undefined;
}

function replaceLast(state: PanelState, turn: Turn | undefined, patch: Partial<PanelState> = {}): PanelState {
  const turns = state.turns.slice(0, -1);
  return { ...state, ...patch, turns: turn ? [...turns, turn] : turns };
}

function addChunk(turn: Turn, chunk: ChatChunk): Turn {
  if (chunk.index < turn.nextIndex || chunk.index in turn.pending) {
    return turn;
  }
  const received: Record<number, string> = { ...turn.pending, [chunk.index]: chunk.delta };
  let { answer, nextIndex } = turn;
  for (let next = received[nextIndex]; next !== undefined; next = received[nextIndex]) {
    answer += next;
    nextIndex += 1;
  }
  const pending = Object.fromEntries(Object.entries(received).filter(([index]) => Number(index) > nextIndex));
  return { ...turn, answer, nextIndex, pending, turn: chunk.turn };
}

/** The state after `action`; returns `state` itself when the action does not apply. */
export function reduce(state: PanelState, action: PanelAction): PanelState {
  const current = streamingTurn(state);
  switch (action.type) {
    case 'asked': {
      const turn: Turn = {
        id: state.nextTurnId,
        question: action.question,
        answer: '',
        nextIndex: 0,
        pending: {},
        status: 'streaming',
        sources: [],
        ...(action.attached?.length ? { attached: action.attached } : {}),
      };
      return { ...state, turns: [...state.turns, turn], nextTurnId: state.nextTurnId + 1, error: undefined };
    }
    case 'chunk': {
      const { chunk } = action;
      if (!current || chunk.chatId !== state.chatId || (current.turn !== undefined && current.turn !== chunk.turn)) {
        return state;
      }
      return replaceLast(state, addChunk(current, chunk));
    }
    case 'finished': {
      const { result } = action;
      if (!current || result.chatId !== state.chatId) {
        return state;
      }
      return replaceLast(state, {
        ...current,
        answer: result.text,
        pending: {},
        turn: result.turn,
        status: 'done',
        sources: result.sources,
        finishReason: result.finishReason,
        seconds: result.timings.totalMs / 1000,
        tokensPerSecond: result.timings.tokensPerSecond,
        ...(action.attached ? { attached: action.attached } : {}),
      });
    }
    case 'cancelled':
      if (!current || action.chatId !== state.chatId) {
        return state;
      }
      return replaceLast(state, { ...current, pending: {}, status: 'cancelled' });
    case 'failed': {
      if (!current || action.chatId !== state.chatId) {
        return state;
      }
      // The turn stays, marked as failed with the reason; when nothing arrived, the question
      // also goes back to the input, to ask again.
      const error: PanelError = current.answer === '' ? { message: action.message, question: current.question } : { message: action.message };
      return replaceLast(state, { ...current, pending: {}, status: 'error', error: action.message }, { error });
    }
    case 'newChat':
      return { ...initialState(action.chatId), nextTurnId: state.nextTurnId };
    case 'restore':
      return action.state;
  }
}

/** A conversation as the server's `sage/chat/history` holds it: a user message then its answer. */
export function stateFromHistory(chatId: string, messages: HistoryResult['messages']): PanelState {
  const turns: Turn[] = [];
  for (const message of messages) {
    const last = turns.at(-1);
    if (message.role === 'assistant' && last?.answer === '') {
      turns[turns.length - 1] = { ...last, answer: message.content };
    } else if (message.role === 'user') {
      turns.push({ id: turns.length + 1, question: message.content, answer: '', nextIndex: 0, pending: {}, status: 'done', sources: [] });
    }
  }
  return { chatId, turns, nextTurnId: turns.length + 1 };
}

/**
 * A state saved by a webview, read back after a window reload: undefined unless it looks like a
 * panel state; an answer that was being written is cancelled (its request ended with the window).
 */
export function savedState(saved: unknown): PanelState | undefined {
  const state = saved as Partial<PanelState> | undefined;
  if (typeof state?.chatId !== 'string' || !Array.isArray(state.turns) || typeof state.nextTurnId !== 'number') {
    return undefined;
  }
  const turns = state.turns.map((turn): Turn => (turn.status === 'streaming' ? { ...turn, pending: {}, status: 'cancelled' } : turn));
  return { chatId: state.chatId, turns, nextTurnId: state.nextTurnId };
}
