/** VS Code's own Chat, apart from VS Code: features detected, models listed, messages folded, `@sage`'s routes and follow-ups. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import manifest from '../package.json';
import type { BackendStatus, ModelInfo } from '../src/protocol';
import { nativeChatFeatures, Role, type HistoryTurn, type RequestMessage } from '../src/nativeChat/chatApi';
import { countTokens, estimateTokens, foldMessages, plainMessages } from '../src/nativeChat/messages';
import { ACTIVE_MODEL_ID, backendOverride, finetuneModelId, modelList, VENDOR } from '../src/nativeChat/models';
import {
  chatIdFromHistory,
  followupsFor,
  historyMessages,
  PARTICIPANT_ID,
  pipelineMarkdown,
  routeCommand,
  shortenedNote,
  sourcesWithoutFile,
} from '../src/nativeChat/participantText';

const fn = (): undefined => undefined;

describe('native chat feature detection', () => {
  const modern = { chat: { createChatParticipant: fn }, lm: { registerLanguageModelChatProvider: fn, selectChatModels: fn }, LanguageModelTextPart: function TextPart(): undefined { return undefined; } };

  it('registers nothing on a Code without the chat API (1.82): the panel is all there is', () => {
    assert.deepEqual(nativeChatFeatures({ window: {} }, '1.82.0'), { participant: false, provider: false, providerStop: false });
  });

  it('offers @sage alone where only chat participants exist (1.90 to 1.103)', () => {
    assert.deepEqual(nativeChatFeatures({ chat: { createChatParticipant: fn }, lm: { selectChatModels: fn } }, '1.95.3'), {
      participant: true,
      provider: false,
      providerStop: false,
    });
  });

  it('offers the models too from 1.104, and knows Stop reaches them only from 1.127', () => {
    assert.deepEqual(nativeChatFeatures(modern, '1.104.0'), { participant: true, provider: true, providerStop: false });
    assert.deepEqual(nativeChatFeatures(modern, '1.127.0-insider'), { participant: true, provider: true, providerStop: true });
    assert.deepEqual(nativeChatFeatures(modern, '1.139.1'), { participant: true, provider: true, providerStop: true });
  });
});

describe('the sage models in the picker', () => {
  const store: ModelInfo[] = [
    { name: 'sage_code_expert', baseModel: 'Qwen/Qwen2.5-0.5B', state: 'merged', path: '/h/finetune_output/sage_code_expert' },
    { name: 'docs_helper', baseModel: null, state: 'adapter', path: '/h/finetune_output/docs_helper' },
  ];
  const mock: BackendStatus = { backend: 'mock', model: 'mock', state: 'ready' };

  it('lists the active backend first, then every finetuned model, all usable in agent mode', () => {
    const models = modelList(mock, store);
    assert.deepEqual(models.map((m) => [m.id, m.name, m.detail]), [
      [ACTIVE_MODEL_ID, 'Sage (mock)', 'ready'],
      [finetuneModelId('sage_code_expert'), 'Sage finetune: sage_code_expert', 'merged'],
      [finetuneModelId('docs_helper'), 'Sage finetune: docs_helper', 'LoRA adapter'],
    ]);
    assert.ok(models.every((m) => m.capabilities.toolCalling === true && m.maxInputTokens > 0 && m.maxOutputTokens > 0));
    assert.equal(modelList({ backend: 'compatible', model: 'qwen-coder', state: 'idle' }, [])[0]?.name, 'Sage (compatible: qwen-coder)');
  });

  it('does not list the finetuned model the active backend serves twice', () => {
    const finetune: BackendStatus = { backend: 'finetune', model: null, state: 'idle' };
    assert.deepEqual(modelList(finetune, store, 'sage_code_expert').map((m) => m.name), ['Sage (finetune: sage_code_expert)', 'Sage finetune: docs_helper']);
  });

  it('lists the store alone when the server did not answer its status', () => {
    assert.deepEqual(modelList(undefined, store).map((m) => m.id), [finetuneModelId('sage_code_expert'), finetuneModelId('docs_helper')]);
  });

  it('asks for another finetuned model with a per-turn finetune override, the active one without', () => {
    assert.equal(backendOverride(ACTIVE_MODEL_ID, mock), undefined);
    assert.deepEqual(backendOverride(finetuneModelId('docs_helper'), mock), { backend: 'finetune', finetuneModel: 'docs_helper' });
    const finetune: BackendStatus = { backend: 'finetune', model: null, state: 'ready' };
    assert.equal(backendOverride(finetuneModelId('docs_helper'), finetune, 'docs_helper'), undefined);
    assert.throws(() => backendOverride('gpt-4o', mock), /unknown Sage model gpt-4o/);
  });
});

describe('messages folded into one sage/chat message', () => {
  const text = (value: string): { value: string } => ({ value });
  const message = (role: number, ...content: unknown[]): RequestMessage => ({ role, content });

  it('sends a lone question as it is', () => {
    assert.equal(foldMessages(plainMessages([message(Role.user, text('What is a map stage?'))])), 'What is a map stage?');
  });

  it('puts instructions and earlier turns under headings before the last question', () => {
    const folded = foldMessages(
      plainMessages([
        message(Role.system, text('Be brief.')),
        message(Role.user, text('What is a map stage?')),
        message(Role.assistant, text('It applies a function.'), { callId: 'c1', name: 'search', input: {} }),
        message(Role.user, { callId: 'c1', content: [text('tool said: ok')] }, text(' And a filter?')),
      ]),
    );
    assert.equal(
      folded,
      'The conversation so far:\n\n### Instructions\n\nBe brief.\n\n### User\n\nWhat is a map stage?\n\n' +
        '### Assistant\n\nIt applies a function.\n\n### Answer this\n\ntool said: ok And a filter?',
    );
  });

  it('refuses a request without a user message', () => {
    assert.throws(() => foldMessages(plainMessages([message(Role.assistant, text('hi')), message(Role.user, text('   '))])), /no user message/);
  });

  it('counts tokens locally, about four characters each', () => {
    assert.equal(estimateTokens(''), 0);
    assert.equal(estimateTokens('abcdefghi'), 3);
    assert.equal(countTokens(message(Role.user, text('abcd'), text('efgh'))), 2);
  });
});

describe('@sage', () => {
  it('routes /pipeline and /explain, and everything else to the chat', () => {
    assert.equal(routeCommand('pipeline'), 'pipeline');
    assert.equal(routeCommand('explain'), 'explain');
    assert.equal(routeCommand(undefined), 'chat');
    assert.equal(routeCommand('unknown'), 'chat');
  });

  it('is the participant and the vendor the manifest declares, with its slash commands and activation events', () => {
    const participant = manifest.contributes.chatParticipants.find((p) => p.id === PARTICIPANT_ID);
    assert.equal(participant?.name, 'sage');
    assert.deepEqual(participant.commands.map((c) => c.name), ['pipeline', 'explain']);
    assert.ok(manifest.contributes.languageModelChatProviders.some((p) => p.vendor === VENDOR));
    assert.ok(manifest.activationEvents.includes(`onChatParticipant:${PARTICIPANT_ID}`));
    assert.ok(manifest.activationEvents.includes(`onLanguageModelChatProvider:${VENDOR}`));
    assert.match(manifest.engines.vscode, /^\^1\.82\./, 'older VS Code keeps the panel');
  });

  const markdown = (value: string): { value: { value: string } } => ({ value: { value } });
  const history: HistoryTurn[] = [
    { participant: PARTICIPANT_ID, prompt: 'first?' },
    { participant: PARTICIPANT_ID, response: [markdown('First '), markdown('answer.')], result: { metadata: { route: 'chat', prompt: 'first?', chatId: 'vscode-chat-1' } } },
    { participant: PARTICIPANT_ID, prompt: 'second?' },
    { participant: PARTICIPANT_ID, response: [markdown('Second.')], result: { metadata: { route: 'chat', prompt: 'second?' } } },
  ];

  it('continues the server conversation of its latest answer that had one', () => {
    assert.equal(chatIdFromHistory(history), 'vscode-chat-1');
    assert.equal(chatIdFromHistory([]), undefined);
    assert.equal(chatIdFromHistory([{ participant: 'other.x', response: [], result: { metadata: { chatId: 'theirs' } } }]), undefined);
  });

  it('gives another vendor\'s model the history as messages', () => {
    assert.deepEqual(historyMessages(history), [
      { role: 'user', text: 'first?' },
      { role: 'assistant', text: 'First answer.' },
      { role: 'user', text: 'second?' },
      { role: 'assistant', text: 'Second.' },
    ]);
  });

  it('offers follow-ups that fit the answer, none after a failure', () => {
    assert.deepEqual(followupsFor({ metadata: { route: 'chat', prompt: 'summarize logs' } }).map((f) => [f.label, f.command, f.prompt]), [
      ['Show an example', undefined, 'Show a complete, runnable example.'],
      ['Build a pipeline for this', 'pipeline', 'summarize logs'],
    ]);
    assert.deepEqual(followupsFor({ metadata: { route: 'pipeline', prompt: 'x', pipelineValid: true } }).map((f) => f.label), ['Explain the pipeline']);
    assert.deepEqual(followupsFor({ metadata: { route: 'pipeline', prompt: 'x', pipelineValid: false } }).map((f) => [f.label, f.command, f.prompt]), [
      ['Build the pipeline again', 'pipeline', 'x'],
    ]);
    assert.deepEqual(followupsFor({ metadata: { route: 'explain', prompt: '' } }).map((f) => f.label), ['Suggest improvements', 'Write tests']);
    assert.deepEqual(followupsFor({ errorDetails: { message: 'boom' }, metadata: { route: 'chat', prompt: 'x' } }), []);
  });

  it('names the attached code the server shortened, and says nothing when none was', () => {
    const range = { start: { line: 9, character: 0 }, end: { line: 120, character: 0 } };
    const attached = [
      { uri: 'file:///w/calc.py', truncated: false },
      { uri: 'file:///w/big.py', range, truncated: true },
    ];
    const relative = (uri: string): string => uri.replace('file:///w/', '');
    assert.equal(shortenedNote(attached, relative), '\n\n_Shortened to fit the context budget (`sage.contextTokens`): `big.py:10-120`._');
    assert.equal(shortenedNote(attached.slice(0, 1), relative), '');
  });

  it('shows a pipeline\'s YAML fenced, with its warnings', () => {
    const shown = pipelineMarkdown({ name: 'qa', yaml: 'name: qa\nstages: []', valid: false, errors: ['no source stage'], attempts: 2 });
    assert.equal(shown, 'Pipeline **qa** (not valid, 2 attempt(s)):\n\n- no source stage\n\n```yaml\nname: qa\nstages: []\n```');
  });

  it('lists the sources it cannot link to a file', () => {
    const sources = [
      { n: 1, title: 'Install', path: 'guide/install.md', heading: 'Virtual environment', score: 1, uri: 'file:///d/guide/install.md' },
      { n: 2, title: 'Pipelines', path: 'pipelines.md', heading: '', score: 0.5 },
    ];
    assert.equal(sourcesWithoutFile(sources), '\n\nSources:\n- [2] Pipelines (`pipelines.md`)');
    assert.equal(sourcesWithoutFile(sources.slice(0, 1)), '');
  });
});
