/** The host's pure helpers: settings sent, server command, error lines, status text, texts, CSP. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { describeServerDown, describeStatus, shouldPrepare } from '../src/backendStatus';
import { pipelineFileName, questionAboutCode } from '../src/commandText';
import { errorLine } from '../src/errors';
import { contentSecurityPolicy, renderPanelHtml } from '../src/panelHtml';
import { documentSelector } from '../src/documentSelector';
import { splitCommand } from '../src/shellWords';
import manifest from '../package.json';
import { sagePython } from './support/paths';
import { PROTOCOL_KEYS, RESTRICTED_KEYS, userSettings, type InspectedSetting } from '../src/userSettings';

describe('settings sent to the server', () => {
  const inspected: Record<string, InspectedSetting & { defaultValue?: unknown }> = {
    backend: { defaultValue: 'mock', globalValue: 'compatible' },
    model: { defaultValue: '', globalValue: 'm', workspaceValue: 'w', workspaceFolderValue: 'f' },
    index: { defaultValue: 'docs-public' },
    topK: { defaultValue: 4, workspaceValue: 7 },
    baseUrl: { defaultValue: '', globalValue: '  ' },
    'vllm.python': { defaultValue: '', globalValue: '/opt/vllm/bin/python' },
    'vllm.serveAdapter': { defaultValue: false, workspaceValue: false },
    'server.command': { defaultValue: 'sage lsp', globalValue: 'other lsp' },
  };

  it('holds only what the person set, most specific scope first, vllm nested, no server keys', () => {
    assert.deepEqual(
      userSettings((key) => inspected[key], true),
      { backend: 'compatible', model: 'f', topK: 7, vllm: { python: '/opt/vllm/bin/python', serveAdapter: false } },
    );
  });

  it('is empty when nothing is set', () => {
    assert.deepEqual(userSettings(() => ({}), true), {});
  });

  it('takes only the user value of what runs and where chats and keys go in an untrusted workspace', () => {
    const cloned: Record<string, InspectedSetting> = {
      backend: { globalValue: 'mock', workspaceValue: 'compatible' },
      baseUrl: { workspaceValue: 'http://collector.example/v1' },
      apiKey: { globalValue: 'sk-mine', workspaceFolderValue: 'sk-theirs' },
      model: { workspaceValue: 'theirs' },
      finetuneModel: { workspaceFolderValue: 'theirs' },
      sageHome: { workspaceValue: '/tmp/theirs' },
      'vllm.python': { workspaceValue: '/tmp/evil.sh' },
      'vllm.extraArgs': { workspaceValue: ['--x'] },
      topK: { workspaceValue: 7 },
    };
    assert.deepEqual(userSettings((key) => cloned[key], false), { backend: 'mock', apiKey: 'sk-mine', topK: 7 });
    assert.deepEqual(userSettings((key) => cloned[key], true), {
      backend: 'compatible',
      baseUrl: 'http://collector.example/v1',
      apiKey: 'sk-theirs',
      model: 'theirs',
      finetuneModel: 'theirs',
      sageHome: '/tmp/theirs',
      vllm: { python: '/tmp/evil.sh', extraArgs: ['--x'] },
      topK: 7,
    });
  });

  it('restricts, in package.json, exactly the settings it ignores, each of them contributed', () => {
    const contributed = Object.keys(manifest.contributes.configuration.properties);
    for (const key of ['server.command', 'vllm.python', 'vllm.extraArgs', 'sageHome', 'backend', 'baseUrl', 'apiKey', 'model', 'finetuneModel']) {
      assert.ok(RESTRICTED_KEYS.has(key), key);
      assert.ok(contributed.includes(`sage.${key}`), key);
    }
    assert.equal(RESTRICTED_KEYS.size, 9);
  });
});

describe('settings contributed in package.json', () => {
  const properties = manifest.contributes.configuration.properties as Record<string, { default?: unknown }>;

  it("are all sent to the server (but the extension's own server.*), and only they", () => {
    const contributed = Object.keys(properties)
      .map((key) => key.replace(/^sage\./, ''))
      .filter((key) => !key.startsWith('server.'));
    assert.deepEqual([...contributed].sort(), [...PROTOCOL_KEYS].sort());
  });

  it('include the prompt, the history budget, the answer limit and the timeout, sent when set', () => {
    const set: Record<string, InspectedSetting> = {
      systemPrompt: { globalValue: 'Be brief.' },
      historyTokens: { workspaceValue: 2000 },
      maxTokens: { globalValue: 256 },
      requestTimeoutSeconds: { globalValue: 30 },
    };
    assert.deepEqual(userSettings((key) => set[key], true), { systemPrompt: 'Be brief.', historyTokens: 2000, maxTokens: 256, requestTimeoutSeconds: 30 });
    assert.deepEqual(userSettings((key) => (key === 'maxTokens' ? { globalValue: null } : undefined), true), {});
  });

  it('have the defaults of sage_lsp/config.py', () => {
    const script = [
      'import json',
      'from sage_lsp.config import Settings',
      's = Settings()',
      'print(json.dumps({"systemPrompt": s.system_prompt, "historyTokens": s.history_tokens,',
      '  "maxTokens": s.max_tokens, "requestTimeoutSeconds": s.request_timeout_seconds}))',
    ].join('\n');
    const python = JSON.parse(execFileSync(sagePython(), ['-c', script], { encoding: 'utf8' })) as Record<string, unknown>;
    for (const [key, value] of Object.entries(python)) {
      assert.deepEqual(properties[`sage.${key}`]?.default, value, key);
    }
  });
});

describe('server command', () => {
  it('splits like a shell', () => {
    assert.deepEqual(splitCommand('sage lsp'), ['sage', 'lsp']);
    assert.deepEqual(splitCommand(`  "/my dir/python"  -m   sage_lsp 'a b' c\\ d "x\\"y" ''`), ['/my dir/python', '-m', 'sage_lsp', 'a b', 'c d', 'x"y', '']);
    assert.deepEqual(splitCommand('~/venv/bin/sage lsp ~x', '/home/me'), ['/home/me/venv/bin/sage', 'lsp', '~x']);
    assert.deepEqual(splitCommand('   '), []);
  });

  it('refuses an unclosed quote', () => {
    assert.throws(() => splitCommand('sage "lsp'), /unclosed "/);
  });
});

describe('error lines', () => {
  it('shows the message of a backend error, with the hint it lacks', () => {
    const line = errorLine({ code: -32002, message: 'no model x', data: { name: 'x', searched: [], hint: 'check --model' } });
    assert.equal(line, 'no model x — check --model');
    const already = errorLine({ code: -32001, message: 'cannot reach u — try --backend mock', data: { hint: 'try --backend mock' } });
    assert.equal(already, 'cannot reach u — try --backend mock');
  });

  it('adds the last log line of a failed service and the errors of a failed pipeline, on one line', () => {
    const service = errorLine({ code: -32003, message: 'vLLM exited\n(code 1)', data: { logPath: '/l', logTail: 'a\nOOM: no memory\n\n', exitCode: 1 } });
    assert.equal(service, 'vLLM exited (code 1) — log: OOM: no memory');
    const pipeline = errorLine({ code: -32004, message: 'no valid plan', data: { errors: ['stage 1: bad', 'stage 2: worse'] } });
    assert.equal(pipeline, 'no valid plan — stage 1: bad; stage 2: worse');
  });

  it('reads plain errors too', () => {
    assert.equal(errorLine(new Error('spawn sage ENOENT')), 'spawn sage ENOENT');
  });
});

describe('status bar text', () => {
  it('spins while the model starts or merges', () => {
    assert.match(describeStatus({ state: 'starting', backend: 'vllm', model: null }).text, /^\$\(sync~spin\) Sage: vllm starting/);
    assert.match(describeStatus({ state: 'starting', backend: 'finetune', model: 'm', message: 'merging m' }).text, /sync~spin.*merging/);
  });

  it('names the model when ready, flags errors, tells a stop from idle', () => {
    assert.equal(describeStatus({ state: 'ready', backend: 'compatible', model: 'tiny' }).text, '$(check) Sage: tiny ready');
    const error = describeStatus({ state: 'error', backend: 'ollama', model: null, message: 'refused' });
    assert.equal(error.error, true);
    assert.match(error.tooltip, /refused/);
    assert.match(describeStatus({ state: 'idle', backend: 'mock', model: null, message: 'stopped' }).text, /stopped$/);
    assert.match(describeStatus({ state: 'idle', backend: 'mock', model: null }).text, /idle$/);
  });
});

describe('status bar when the server is not there, or the backend never prepared', () => {
  it('says the server stopped, with the reason in the tooltip, as an error', () => {
    const view = describeServerDown('the language server did not start (the server exited with code 3: boom)');
    assert.equal(view.text, '$(error) Sage: server stopped');
    assert.match(view.tooltip, /exited with code 3: boom/);
    assert.equal(view.error, true);
  });

  it('prepares a backend that launches nothing, never a model service or a stopped one', () => {
    assert.equal(shouldPrepare({ state: 'idle', backend: 'mock', model: null }), true);
    assert.equal(shouldPrepare({ state: 'idle', backend: 'compatible', model: 'm' }), true);
    assert.equal(shouldPrepare({ state: 'idle', backend: 'finetune', model: 'm' }), false);
    assert.equal(shouldPrepare({ state: 'idle', backend: 'vllm', model: 'm' }), false);
    assert.equal(shouldPrepare({ state: 'idle', backend: 'mock', model: null, message: 'stopped' }), false);
    assert.equal(shouldPrepare({ state: 'ready', backend: 'mock', model: null }), false);
  });
});

describe('command texts', () => {
  it('fences the selection with its language, longer than any fence inside', () => {
    assert.equal(questionAboutCode(' Why? ', 'python', 'x = 1'), 'Why?\n\n```python\nx = 1\n```');
    assert.equal(questionAboutCode('Q', 'markdown', '```js\n```\n'), 'Q\n\n````markdown\n```js\n```\n````');
  });

  it('names a pipeline file after its description', () => {
    assert.equal(pipelineFileName('Answer questions about our docs, with retrieval!'), 'answer-questions-about-our-docs.sage.yaml');
    assert.equal(pipelineFileName('???'), 'pipeline.sage.yaml');
  });
});

describe('documents', () => {
  it('hands the server every open file and untitled buffer (context, code actions, completions; pipelines among them)', () => {
    assert.deepEqual(documentSelector(), [{ scheme: 'file' }, { scheme: 'untitled' }]);
  });
});

describe('panel HTML', () => {
  it('has a strict policy: nothing by default, style from the webview, script by nonce', () => {
    const csp = contentSecurityPolicy('https://webview.test', 'n0nce');
    assert.match(csp, /^default-src 'none'/);
    assert.match(csp, /style-src https:\/\/webview\.test(;|$)/);
    assert.match(csp, /script-src 'nonce-n0nce'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-(inline|eval)/);
  });

  it('loads one script with the nonce and no inline handlers', () => {
    const html = renderPanelHtml({ cspSource: 'https://w', nonce: 'abc', scriptUri: 'https://w/webview.js', styleUri: 'https://w/chat.css' });
    assert.equal(html.match(/<script/g)?.length, 1);
    assert.match(html, /<script nonce="abc" src="https:\/\/w\/webview.js"><\/script>/);
    assert.doesNotMatch(html, /\son[a-z]+=/i);
    assert.doesNotMatch(html, /style=/);
  });
});
