/**
 * The extension's chat controller against the REAL `sage lsp`, over a vscode-jsonrpc connection on
 * the process's stdio: the handshake, settings, a streamed answer, Stop, status, errors, sources.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CancellationTokenSource } from 'vscode-jsonrpc/node';
import { ChatController } from '../src/chatController';
import type { SageConnection } from '../src/connection';
import { stateFromHistory, type PanelAction, type PanelState } from '../src/panelState';
import { contextRef } from '../src/editorContext';
import { Commands, ErrorCodes, Methods, type BackendStatus, type ChatResult, type HistoryResult } from '../src/protocol';
import { userSettings, type InspectedSetting } from '../src/userSettings';
import { startOpenAIServer, type OpenAIServer } from './support/openaiServer';
import { closedPort } from './support/ports';
import { waitFor } from './support/processes';
import { startSageServer, type SageServer } from './support/sageServer';
import { RecordingEditor } from './support/stubEditor';

function chunkDeltas(actions: PanelAction[]): string[] {
  return actions.flatMap((action) => (action.type === 'chunk' ? [action.chunk.delta] : []));
}

describe('chat controller with sage lsp and an OpenAI-compatible server', () => {
  let fast: OpenAIServer;
  let slow: OpenAIServer;
  let server: SageServer;
  let controller: ChatController;
  const actions: PanelAction[] = [];

  before(async () => {
    [fast, slow] = await Promise.all([startOpenAIServer(['--delay', '0.01']), startOpenAIServer(['--delay', '0.05', '--repeat', '40'])]);
    // What VS Code's inspect() reports: defaults for every key, values only for what was set.
    const inspected: Record<string, InspectedSetting & { defaultValue: unknown }> = {
      backend: { defaultValue: 'mock', globalValue: 'compatible' },
      baseUrl: { defaultValue: '', workspaceValue: fast.baseUrl },
      model: { defaultValue: '', globalValue: 'tiny-model' },
      index: { defaultValue: 'docs-public' },
      topK: { defaultValue: 4 },
    };
    server = await startSageServer({ configuration: userSettings((key) => inspected[key], true) });
    controller = new ChatController(server.connection, new RecordingEditor());
    controller.onAction((action) => actions.push(action));
  });

  after(async () => {
    controller.dispose();
    await Promise.all([server.stop(), fast.stop(), slow.stop()]);
  });

  it('speaks protocol version 1 and lists the sage methods', () => {
    const connection: SageConnection = server.connection; // a MessageConnection is a SageConnection
    assert.ok(connection);
    assert.equal(server.capabilities.experimental?.sage?.version, 1);
    assert.ok(server.capabilities.experimental.sage.methods.includes(Methods.chat));
  });

  it('streams an answer whose chunks concatenate to the result', async () => {
    const end = await controller.ask('How do I write a map stage?');
    assert.equal(end?.type, 'finished');
    const { result } = end as { result: ChatResult };
    const deltas = chunkDeltas(actions);
    assert.ok(deltas.length > 5, `only ${deltas.length} chunks`);
    assert.equal(deltas.join(''), result.text);
    assert.match(result.text, /```python\ndef double/);
    const turn = controller.current.turns[0];
    assert.equal(turn?.status, 'done');
    assert.equal(turn.answer, result.text);
  });

  it('was configured by the workspace/configuration answer, which held only the set keys', async () => {
    assert.deepEqual(server.configurationAnswers, [{ backend: 'compatible', baseUrl: fast.baseUrl, model: 'tiny-model' }]);
    const status = await server.connection.sendRequest<BackendStatus>(Methods.backendStatus, {});
    assert.equal(status.backend, 'compatible');
    assert.equal(status.model, 'tiny-model');
    assert.deepEqual(server.messages, []);
  });

  it('reports the backend state as it changes', async () => {
    assert.deepEqual(
      server.statuses.slice(0, 2).map((s) => s.state),
      ['starting', 'ready'],
    );
    await server.connection.sendRequest(Methods.backendStop, {});
    await waitFor(() => server.statuses.at(-1)?.message === 'stopped', 'the stopped status');
    assert.equal(server.statuses.at(-1)?.state, 'idle');
  });

  it('stops an answer: -32800, the partial answer stays in history, the upstream stream is closed', async () => {
    // A pushed section is the whole configuration, as the extension sends it.
    await server.pushSettings({ backend: 'compatible', model: 'tiny-model', baseUrl: slow.baseUrl });
    await controller.newChat();
    const asking = controller.ask('Tell me everything.');
    await waitFor(() => (controller.current.turns[0]?.nextIndex ?? 0) >= 5, 'five chunks');
    controller.stop();
    const end = await asking;
    assert.equal(end?.type, 'cancelled');
    const turn = controller.current.turns[0];
    assert.equal(turn?.status, 'cancelled');
    assert.ok(turn.answer.length > 0);
    const history = await server.connection.sendRequest<HistoryResult>(Methods.chatHistory, { chatId: controller.current.chatId });
    assert.deepEqual(history.messages.map((m) => m.role), ['user', 'assistant']);
    assert.equal(history.messages[1]?.content, turn.answer, 'history holds what the panel shows');
    const streams = await slow.streams();
    assert.equal(streams.at(-1)?.completed, false);
    assert.ok(await slow.waitForClientGone(), 'the HTTP stream to the model was closed');
  });

  it('fails a cancelled request with -32800 (RequestCancelled)', async () => {
    const source = new CancellationTokenSource();
    const request = server.connection.sendRequest<ChatResult>(Methods.chat, { message: 'again', chatId: 'raw-cancel' }, source.token);
    setTimeout(() => {
      source.cancel();
    }, 300);
    await assert.rejects(request, (error: { code?: number }) => error.code === ErrorCodes.requestCancelled);
  });

  it('shows a failure in one line, in the failed turn, and hands the question back', async () => {
    await server.pushSettings({ backend: 'compatible', baseUrl: `http://127.0.0.1:${await closedPort()}/v1` });
    await controller.newChat();
    const end = await controller.ask('Will this fail?');
    assert.equal(end?.type, 'failed');
    const { error, turns } = controller.current;
    assert.deepEqual(turns.map((t) => [t.question, t.status, t.error]), [['Will this fail?', 'error', error?.message]]);
    assert.equal(error?.question, 'Will this fail?');
    assert.match(error.message, /cannot reach .* connection refused/);
    assert.doesNotMatch(error.message, /\n/);
  });
});

describe('the settings the panel sends, the newer ones included', () => {
  it('are taken by sage lsp through workspace/configuration, none refused', async () => {
    const set: Record<string, InspectedSetting> = {
      backend: { globalValue: 'mock' },
      systemPrompt: { globalValue: 'Be brief.' },
      historyTokens: { workspaceValue: 2000 },
      maxTokens: { globalValue: 256 },
      requestTimeoutSeconds: { globalValue: 30 },
      contextTokens: { globalValue: 500 },
      'completion.enabled': { globalValue: false },
      'completion.maxTokens': { workspaceValue: 32 },
    };
    const server = await startSageServer({ configuration: userSettings((key) => set[key], true) });
    try {
      const controller = new ChatController(server.connection, new RecordingEditor());
      const end = await controller.ask('Hello?');
      controller.dispose();
      assert.equal(end?.type, 'finished');
      assert.deepEqual(server.configurationAnswers, [
        {
          backend: 'mock',
          systemPrompt: 'Be brief.',
          historyTokens: 2000,
          maxTokens: 256,
          requestTimeoutSeconds: 30,
          contextTokens: 500,
          completion: { enabled: false, maxTokens: 32 },
        },
      ]);
      assert.deepEqual(server.messages, [], 'no setting was refused');

      // `sage.completion.enabled: false` turns the ghost text off; unset, it is back on.
      const uri = pathToFileURL(path.join(tmpdir(), 'sage-settings-test', 'a.py')).href;
      await server.connection.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'python', version: 1, text: 'x = ' } });
      const complete = async (): Promise<string[]> => {
        const params = { textDocument: { uri }, position: { line: 0, character: 4 }, context: { triggerKind: 1 } };
        const answer = await server.connection.sendRequest<{ items: { insertText: string }[] } | { insertText: string }[] | null>('textDocument/inlineCompletion', params);
        return (Array.isArray(answer) ? answer : (answer?.items ?? [])).map((item) => item.insertText);
      };
      assert.deepEqual(await complete(), []);
      await server.pushSettings({ backend: 'mock' });
      assert.deepEqual(await complete(), ['sage_mock_completion(line=1)']);
    } finally {
      await server.stop();
    }
  });
});

describe('a conversation brought back after a window reload', () => {
  let server: SageServer;

  before(async () => {
    server = await startSageServer({ initializationOptions: { backend: 'mock' } });
  });

  after(async () => {
    await server.stop();
  });

  it("comes from the server's history when the server still has it", async () => {
    const first = new ChatController(server.connection, new RecordingEditor(), () => 'kept-chat');
    await first.ask('What is a map stage?');
    const saved = JSON.parse(JSON.stringify(first.current)) as PanelState;
    first.dispose();
    const reloaded = new ChatController(server.connection, new RecordingEditor());
    const shown: PanelAction[] = [];
    reloaded.onAction((action) => shown.push(action));
    await reloaded.resume({ ...saved, turns: [] }); // the webview's copy may lag: the server's wins
    reloaded.dispose();
    assert.equal(reloaded.current.chatId, 'kept-chat');
    assert.deepEqual(reloaded.current.turns.map((t) => [t.question, t.answer]), [['What is a map stage?', saved.turns[0]?.answer]]);
    assert.equal(shown.at(-1)?.type, 'restore');
  });

  it('comes from what the webview saved when the server lost it (a new process)', async () => {
    const saved = stateFromHistory('lost-chat', [
      { role: 'user', content: 'old question' },
      { role: 'assistant', content: 'old answer' },
    ]);
    const controller = new ChatController(server.connection, new RecordingEditor());
    await controller.resume(saved);
    controller.dispose();
    assert.deepEqual(controller.current, saved);
  });
});

describe('chat controller with the mock backend and a retrieval index', () => {
  let server: SageServer;

  before(async () => {
    server = await startSageServer({ initializationOptions: { backend: 'mock', index: 'notes' } });
    await server.ingestNotes('notes');
  });

  after(async () => {
    await server.stop();
  });

  it('returns the sources of an answer with their paths', async () => {
    const controller = new ChatController(server.connection, new RecordingEditor());
    const end = await controller.ask('How do I create a virtual environment?');
    controller.dispose();
    assert.equal(end?.type, 'finished');
    const turn = controller.current.turns[0];
    assert.ok(turn && turn.sources.length > 0, 'some sources');
    assert.equal(turn.sources[0]?.path, 'guide/install.md');
    const uri = turn.sources[0].uri ?? '';
    assert.match(uri, /^file:\/\/\/.*\/notes\/guide\/install\.md$/);
    assert.ok(existsSync(fileURLToPath(uri)), 'the source URI names a file that exists');
    assert.match(turn.answer, /virtual environment/);
  });
});

describe('a question about editor code, with sage lsp and an OpenAI-compatible server', () => {
  let model: OpenAIServer;
  let server: SageServer;
  let controller: ChatController;
  const folder = pathToFileURL(path.join(tmpdir(), 'sage-context-test')).href;
  const line = (startLine: number, endLine: number) => ({ start: { line: startLine, character: 0 }, end: { line: endLine, character: 0 } });

  /** Opens `text` as the editor's copy of `uri` (never on disk), then edits it without saving. */
  async function openUnsaved(uri: string, text: string, edited: string): Promise<void> {
    await server.connection.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'python', version: 1, text } });
    await server.connection.sendNotification('textDocument/didChange', { textDocument: { uri, version: 2 }, contentChanges: [{ text: edited }] });
  }

  /** What the model was last asked, all messages in one text. */
  async function lastPrompt(): Promise<string> {
    const requests = await model.requests();
    return (requests.at(-1)?.messages ?? []).map((message) => message.content).join('\n');
  }

  before(async () => {
    model = await startOpenAIServer(['--delay', '0']);
    server = await startSageServer({ initializationOptions: { backend: 'compatible', baseUrl: model.baseUrl, model: 'tiny-model', index: null } });
    controller = new ChatController(server.connection, new RecordingEditor());
  });

  after(async () => {
    controller.dispose();
    await Promise.all([server.stop(), model.stop()]);
  });

  it('sends the selection as a reference: the model sees the unsaved text and the diagnostic, the turn its chip', async () => {
    const uri = `${folder}/calc.py`;
    await openUnsaved(uri, 'def add(a, b):\n    return a - b\n', 'def add(a, b):\n    return a - b  # unsaved\n');
    const diagnostic = { range: { start: { line: 1, character: 11 }, end: { line: 1, character: 16 } }, message: 'subtracts instead of adding', severity: 1 as const };
    const end = await controller.ask('Why is add wrong?', [contextRef(uri, line(1, 2), [diagnostic])]);
    assert.equal(end?.type, 'finished');
    assert.deepEqual((end as { result: ChatResult }).result.context, [{ uri, range: line(1, 2), truncated: false }]);
    assert.deepEqual(controller.current.turns.at(-1)?.attached, [{ label: 'calc.py:2', uri, truncated: false }]);
    assert.equal(controller.current.turns.at(-1)?.question, 'Why is add wrong?');
    const prompt = await lastPrompt();
    assert.match(prompt, /return a - b {2}# unsaved/);
    assert.match(prompt, /subtracts instead of adding/);
    assert.doesNotMatch(prompt, /def add/, 'only the selected line goes');
  });

  it('marks the chip of a document the contextTokens budget shortened', async () => {
    const uri = `${folder}/big.py`;
    const big = Array.from({ length: 2000 }, (_, i) => `value_${i} = ${i}\n`).join('');
    await openUnsaved(uri, '', big);
    await server.pushSettings({ backend: 'compatible', baseUrl: model.baseUrl, model: 'tiny-model', index: null, contextTokens: 100 });
    const end = await controller.ask('What does this file hold?', [contextRef(uri, undefined)]);
    assert.equal(end?.type, 'finished');
    assert.deepEqual(controller.current.turns.at(-1)?.attached, [{ label: 'big.py', uri, truncated: true }]);
    const prompt = await lastPrompt();
    assert.match(prompt, /value_0 = 0/);
    assert.doesNotMatch(prompt, /value_1999 = 1999/);
  });

  it("offers sage.fix as the server's command and leaves sage.explain to the extension", () => {
    const { executeCommandProvider } = server.capabilities as { executeCommandProvider?: { commands: string[] } };
    const commands = executeCommandProvider?.commands ?? [];
    assert.ok(commands.includes(Commands.fix), `server commands: ${commands.join(', ')}`);
    assert.equal(commands.includes(Commands.explain), false);
  });
});
