/** The panel's reducer: chunk order, finish, cancel, error, new chat, restore. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { initialState, isBusy, reduce, savedState, stateFromHistory, type PanelAction, type PanelState } from '../src/panelState';
import type { ChatResult } from '../src/protocol';

const CHAT = 'chat-1';

function run(actions: PanelAction[], state: PanelState = initialState(CHAT)): PanelState {
  return actions.reduce(reduce, state);
}

function chunk(index: number, delta: string, turn = 1, chatId = CHAT): PanelAction {
  return { type: 'chunk', chunk: { chatId, turn, index, delta } };
}

function result(text: string, turn = 1): ChatResult {
  return {
    chatId: CHAT,
    turn,
    text,
    finishReason: 'stop',
    sources: [{ n: 1, title: 'Install', path: 'guide/install.md', heading: 'Venv', score: 2.5 }],
    timings: { ttftMs: 10, totalMs: 1500, tokensPerSecond: 42 },
  };
}

describe('panel state', () => {
  it('starts empty and idle', () => {
    const state = initialState(CHAT);
    assert.deepEqual(state.turns, []);
    assert.equal(isBusy(state), false);
  });

  it('adds a streaming turn when a question is asked', () => {
    const state = run([{ type: 'asked', question: 'why?' }]);
    assert.equal(state.turns.length, 1);
    assert.equal(state.turns[0]?.status, 'streaming');
    assert.equal(isBusy(state), true);
  });

  it('puts chunks in index order, whatever order they arrive in', () => {
    const state = run([{ type: 'asked', question: 'q' }, chunk(0, 'a '), chunk(2, 'c '), chunk(3, 'd')]);
    assert.equal(state.turns[0]?.answer, 'a ');
    const filled = reduce(state, chunk(1, 'b '));
    assert.equal(filled.turns[0]?.answer, 'a b c d');
    assert.deepEqual(filled.turns[0].pending, {});
    assert.equal(filled.turns[0].turn, 1);
  });

  it('ignores repeated chunks and chunks of other conversations or turns', () => {
    const state = run([{ type: 'asked', question: 'q' }, chunk(0, 'a'), chunk(0, 'a'), chunk(1, 'X', 1, 'other'), chunk(1, 'Y', 2)]);
    assert.equal(state.turns[0]?.answer, 'a');
  });

  it('takes the result as the final answer with its sources and timings', () => {
    const state = run([{ type: 'asked', question: 'q' }, chunk(0, 'partial'), { type: 'finished', result: result('the whole answer') }]);
    const turn = state.turns[0];
    assert.equal(turn?.status, 'done');
    assert.equal(turn.answer, 'the whole answer');
    assert.equal(turn.sources[0]?.path, 'guide/install.md');
    assert.equal(turn.seconds, 1.5);
    assert.equal(isBusy(state), false);
  });

  it('keeps the partial answer of a cancelled turn', () => {
    const state = run([{ type: 'asked', question: 'q' }, chunk(0, 'half '), chunk(2, 'lost'), { type: 'cancelled', chatId: CHAT }]);
    assert.equal(state.turns[0]?.status, 'cancelled');
    assert.equal(state.turns[0].answer, 'half ');
    assert.equal(isBusy(state), false);
  });

  it('keeps a turn that failed before any text, with its reason, and hands its question back', () => {
    const state = run([{ type: 'asked', question: 'will it fail?' }, { type: 'failed', chatId: CHAT, message: 'cannot reach it' }]);
    assert.deepEqual(
      state.turns.map((t) => [t.question, t.answer, t.status, t.error]),
      [['will it fail?', '', 'error', 'cannot reach it']],
    );
    assert.deepEqual(state.error, { message: 'cannot reach it', question: 'will it fail?' });
    assert.equal(isBusy(state), false);
  });

  it('keeps a turn that failed partway, marked as failed', () => {
    const state = run([{ type: 'asked', question: 'q' }, chunk(0, 'some'), { type: 'failed', chatId: CHAT, message: 'stream broke' }]);
    assert.equal(state.turns[0]?.status, 'error');
    assert.equal(state.turns[0].answer, 'some');
    assert.deepEqual(state.error, { message: 'stream broke' });
  });

  it('clears the error when the next question is asked', () => {
    const failed = run([{ type: 'asked', question: 'q' }, { type: 'failed', chatId: CHAT, message: 'no' }]);
    assert.equal(reduce(failed, { type: 'asked', question: 'q' }).error, undefined);
  });

  it('starts a new conversation with nothing in it, and ignores late events of the old one', () => {
    const old = run([{ type: 'asked', question: 'q' }, chunk(0, 'a')]);
    const fresh = reduce(old, { type: 'newChat', chatId: 'chat-2' });
    assert.equal(fresh.chatId, 'chat-2');
    assert.deepEqual(fresh.turns, []);
    assert.ok(fresh.nextTurnId > (old.turns[0]?.id ?? Infinity), 'turn ids stay unique');
    assert.equal(reduce(fresh, { type: 'cancelled', chatId: CHAT }), fresh);
    assert.equal(reduce(fresh, { type: 'finished', result: result('late') }), fresh);
    assert.equal(reduce(fresh, chunk(1, 'late')), fresh);
  });

  it('restores a whole state, as sent to a webview shown again', () => {
    const kept = run([{ type: 'asked', question: 'q' }, chunk(0, 'a'), { type: 'finished', result: result('a') }]);
    const copy = JSON.parse(JSON.stringify(kept)) as PanelState;
    const restored = reduce(initialState('blank'), { type: 'restore', state: copy });
    assert.equal(restored, copy);
    assert.deepEqual(restored.turns, kept.turns);
  });

  it('numbers turns apart and applies later turns', () => {
    const state = run([
      { type: 'asked', question: 'one' },
      { type: 'finished', result: result('first') },
      { type: 'asked', question: 'two' },
      chunk(0, 'sec', 2),
      chunk(1, 'ond', 2),
    ]);
    assert.deepEqual(
      state.turns.map((t) => [t.id, t.answer, t.status]),
      [
        [1, 'first', 'done'],
        [2, 'second', 'streaming'],
      ],
    );
  });

  it('rebuilds a conversation from the server history, a question then its answer', () => {
    const state = stateFromHistory('c', [
      { role: 'user', content: 'q1' },
      { role: 'assistant', content: 'a1' },
      { role: 'user', content: 'q2' },
      { role: 'assistant', content: 'a2' },
    ]);
    assert.equal(state.chatId, 'c');
    assert.deepEqual(state.turns.map((t) => [t.id, t.question, t.answer, t.status]), [[1, 'q1', 'a1', 'done'], [2, 'q2', 'a2', 'done']]);
    assert.equal(state.nextTurnId, 3);
  });

  it('reads back what a webview saved, an answer being written then cancelled, anything else refused', () => {
    const writing = run([{ type: 'asked', question: 'q' }, chunk(0, 'half')]);
    const saved = savedState(JSON.parse(JSON.stringify(writing)));
    assert.equal(saved?.chatId, CHAT);
    assert.deepEqual(saved.turns.map((t) => [t.answer, t.status]), [['half', 'cancelled']]);
    assert.equal(isBusy(saved), false);
    assert.equal(savedState(undefined), undefined);
    assert.equal(savedState({ draft: 'x' }), undefined);
  });
});
