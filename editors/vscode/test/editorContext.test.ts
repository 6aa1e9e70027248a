/** The editor context a question carries: references with the diagnostics on them, and the chips the panel shows. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { attachedChips, contextLabel, contextRef, type DiagnosticLike } from '../src/editorContext';
import { initialState, reduce, type PanelState } from '../src/panelState';
import type { ChatResult } from '../src/protocol';

const URI = 'file:///work/calc.py';

function range(startLine: number, startCharacter: number, endLine: number, endCharacter: number) {
  return { start: { line: startLine, character: startCharacter }, end: { line: endLine, character: endCharacter } };
}

describe('context references', () => {
  it('sends the selection by URI and range with the diagnostics that touch it, LSP severities (from 1)', () => {
    const diagnostics: DiagnosticLike[] = [
      { range: range(1, 4, 1, 9), message: "name 'y' is not defined", severity: 0, source: 'pyflakes', code: { value: 'F821' } },
      { range: range(7, 0, 7, 3), message: 'unused import', severity: 1, code: 401 },
      { range: range(3, 0, 3, 2), message: 'ends where the selection ends', severity: 3 },
    ];
    // A VS Code Range carries more than positions (isEmpty, isSingleLine...): only these are sent.
    const selection = { ...range(1, 0, 3, 0), isEmpty: false };
    assert.deepEqual(contextRef(URI, selection, diagnostics), {
      uri: URI,
      range: range(1, 0, 3, 0),
      diagnostics: [
        { range: range(1, 4, 1, 9), message: "name 'y' is not defined", severity: 1, source: 'pyflakes', code: 'F821' },
        { range: range(3, 0, 3, 2), message: 'ends where the selection ends', severity: 4 },
      ],
    });
  });

  it('sends a whole document without a range, with all its diagnostics, and no empty list', () => {
    assert.deepEqual(contextRef(URI, undefined), { uri: URI });
    const warning: DiagnosticLike = { range: range(7, 0, 7, 3), message: 'unused import', severity: 1 };
    assert.deepEqual(contextRef(URI, undefined, [warning]).diagnostics, [{ range: range(7, 0, 7, 3), message: 'unused import', severity: 2 }]);
    assert.equal('diagnostics' in contextRef(URI, range(0, 0, 1, 0), [warning]), false);
  });

  it('labels a reference path:lines, 1-based; a range ending at a line start stops on the line above', () => {
    assert.equal(contextLabel('calc.py', range(1, 0, 3, 0)), 'calc.py:2-3');
    assert.equal(contextLabel('calc.py', range(1, 0, 3, 5)), 'calc.py:2-4');
    assert.equal(contextLabel('calc.py', range(4, 2, 4, 8)), 'calc.py:5');
    assert.equal(contextLabel('calc.py', range(4, 0, 4, 0)), 'calc.py:5');
    assert.equal(contextLabel('src/calc.py', undefined), 'src/calc.py');
  });

  it('makes a chip of each attached document, marked when the server shortened it', () => {
    const chips = attachedChips(
      [{ uri: URI, range: range(0, 0, 2, 0), truncated: true }, { uri: 'file:///work/util.py', truncated: false }],
      (uri) => uri.replace('file:///work/', ''),
    );
    assert.deepEqual(chips, [
      { label: 'calc.py:1-2', uri: URI, truncated: true },
      { label: 'util.py', uri: 'file:///work/util.py', truncated: false },
    ]);
  });
});

describe('the panel shows what was attached', () => {
  const result = (context?: ChatResult['context']): ChatResult => ({
    chatId: 'c',
    turn: 1,
    text: 'It doubles x.',
    finishReason: 'stop',
    sources: [],
    timings: { ttftMs: 1, totalMs: 10, tokensPerSecond: 1 },
    ...(context ? { context } : {}),
  });
  const sent = [{ label: 'calc.py:1-2', uri: URI, truncated: false }];

  it('shows the chips sent with the question, then those of the answer (shortened ones marked)', () => {
    let state: PanelState = reduce(initialState('c'), { type: 'asked', question: 'Explain this code.', attached: sent });
    assert.deepEqual(state.turns[0]?.attached, sent);
    const answered = [{ label: 'calc.py:1-2', uri: URI, truncated: true }];
    state = reduce(state, { type: 'finished', result: result([{ uri: URI, truncated: true }]), attached: answered });
    assert.deepEqual(state.turns[0]?.attached, answered);
  });

  it('keeps the chips sent when the server reports none, and shows none for a plain question', () => {
    const state = reduce(reduce(initialState('c'), { type: 'asked', question: 'q', attached: sent }), { type: 'finished', result: result() });
    assert.deepEqual(state.turns[0]?.attached, sent);
    assert.equal(reduce(initialState('c'), { type: 'asked', question: 'q', attached: [] }).turns[0]?.attached, undefined);
  });
});
