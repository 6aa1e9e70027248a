/**
 * What the `sage` model provider and `@sage` send, against the REAL `sage lsp`: the model list
 * from its status, one streamed `sage/chat` per request, Stop closing the model's stream, and a
 * finetuned model asked through a per-turn override.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CancellationTokenSource } from 'vscode-jsonrpc/node';
import { errorLine } from '../src/errors';
import { ErrorCodes, Methods } from '../src/protocol';
import { Role } from '../src/nativeChat/chatApi';
import { foldMessages, plainMessages } from '../src/nativeChat/messages';
import { backendOverride, finetuneModelId, modelList } from '../src/nativeChat/models';
import { sendLinked, streamChat } from '../src/nativeChat/stream';
import { startOpenAIServer, type OpenAIServer } from './support/openaiServer';
import { waitFor } from './support/processes';
import { startSageServer, type SageServer } from './support/sageServer';

describe('native chat with sage lsp', () => {
  let server: SageServer;
  let slow: OpenAIServer;

  before(async () => {
    [server, slow] = await Promise.all([
      startSageServer({ initializationOptions: { backend: 'mock' } }),
      startOpenAIServer(['--delay', '0.05', '--repeat', '40']),
    ]);
  });

  after(async () => {
    await Promise.all([server.stop(), slow.stop()]);
  });

  it('lists the active backend\'s model from the server\'s status and its (empty) store', async () => {
    const status = await sendLinked(server.connection, Methods.backendStatus, {});
    const { models } = await sendLinked(server.connection, Methods.models, {});
    assert.deepEqual(modelList(status, models).map((m) => m.name), ['Sage (mock)']);
  });

  it('streams the answer to a folded conversation, in a conversation of its own', async () => {
    const message = foldMessages(
      plainMessages([
        { role: Role.user, content: [{ value: 'What is a map stage?' }] },
        { role: Role.assistant, content: [{ value: 'A stage.' }] },
        { role: Role.user, content: [{ value: 'And a filter?' }] },
      ]),
    );
    const deltas: string[] = [];
    const result = await streamChat(server.connection, { message, chatId: 'lm-1', index: null }, (delta) => deltas.push(delta));
    assert.ok(result);
    assert.ok(deltas.length > 3, `only ${deltas.length} deltas`);
    assert.equal(deltas.join(''), result.text);
    assert.match(result.text, /mock backend/);
    assert.deepEqual(result.sources, []);
    const history = await sendLinked(server.connection, Methods.chatHistory, { chatId: 'lm-1' });
    assert.equal(history.messages[0]?.content, message, 'the server got the folded message as one question');
  });

  it('stops the model when VS Code cancels: no error, the HTTP stream to the model closed', async () => {
    const source = new CancellationTokenSource();
    const deltas: string[] = [];
    const asking = streamChat(
      server.connection,
      // baseUrl and model are per-turn keys the server accepts (programs and paths are not).
      { message: 'Tell me everything.', chatId: 'lm-2', index: null, backend: { backend: 'compatible', baseUrl: slow.baseUrl, model: 'tiny-model' } },
      (delta) => deltas.push(delta),
      source.token,
    );
    await waitFor(() => deltas.length >= 3, 'three deltas');
    source.cancel();
    assert.equal(await asking, undefined);
    assert.ok(await slow.waitForClientGone(), 'the HTTP stream to the model was closed');
    assert.equal((await slow.streams()).at(-1)?.completed, false);
  });

  it('asks a finetuned model that is not the active one with a finetune override (here: not in the store)', async () => {
    const status = await sendLinked(server.connection, Methods.backendStatus, {});
    const backend = backendOverride(finetuneModelId('no_such_model'), status);
    assert.deepEqual(backend, { backend: 'finetune', finetuneModel: 'no_such_model' });
    const failure = await streamChat(server.connection, { message: 'hi', chatId: 'lm-3', index: null, backend }, () => undefined).then(
      () => undefined,
      (error: unknown) => error,
    );
    assert.equal((failure as { code?: number } | undefined)?.code, ErrorCodes.modelNotFound, errorLine(failure));
    assert.match(errorLine(failure), /no_such_model/);
  });
});
