/**
 * The extension inside a real VS Code (code-server 4.139.1), driven in Debian's Chromium as a
 * user would: the status bar, the server it starts, the chat panel, the commands, a server that
 * dies at start and the end of `sage lsp` when the window closes. A failing test leaves its
 * screenshot in test-artifacts/vscode-e2e/.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { Browser, Locator, Page } from 'playwright-core';
import { startOpenAIServer, type OpenAIServer } from '../support/openaiServer';
import { repoRoot } from '../support/paths';
import {
  alive,
  artifactsDir,
  launchBrowser,
  missingPrerequisite,
  openWindow,
  startCodeServer,
  type CodeServer,
  type ProcessInfo,
} from './codeServer';
import { answerInput, chatPanel, editorTab, notification, notificationTexts, openFile, runCommand, statusItem } from './workbench';

const missing = missingPrerequisite();
if (missing && process.env.SAGE_REQUIRE_ALL === '1') {
  throw new Error(`${missing} and SAGE_REQUIRE_ALL=1`);
}

const READY = /Sage: mock ready/;
const DID_NOT_START = /the language server did not start/;
const CODE = 'def double(x):\n    return x * 2\n';
/** The file the code actions work on: line 2 is the one selected. */
const FIX_CODE = 'def total(values):\n    result = sum(values)\n    return result\n';
/** The file completed inline: the cursor ends after `value = ` on line 3. */
const COMPLETE_CODE = 'def half(x):\n    return x / 2\n';
const NOTES: Record<string, string> = {
  'guide/install.md':
    '# Installing sage-lsp\n\n## Virtual environment\n\nCreate a virtual environment with `python -m venv .venv`, ' +
    'activate it, then install sage-lsp into the virtual environment with pip.\n',
  'pipelines.md': '# Pipelines\n\n## Map stages\n\nA map stage applies a function to every record of the stream.\n',
};

describe('the extension in code-server', { skip: missing ?? false }, () => {
  let scratch: string;
  let sageHome: string;
  /** The configured server program: a link to the repository's .venv/bin/sage under another name. */
  let configured: string;
  let settings: Record<string, unknown>;
  let server: CodeServer;
  let browser: Browser;
  let page: Page;
  let slow: OpenAIServer;

  /** The `sage lsp` processes of this code-server started from the configured command. */
  const configuredServers = (): ProcessInfo[] =>
    server.tree().filter((info) => info.argv.includes(configured) && info.argv.includes('lsp'));
  /** Any other `sage` of this code-server (the default command). */
  const otherSages = (): ProcessInfo[] =>
    server.tree().filter((info) => !info.argv.includes(configured) && info.argv.some((arg) => path.basename(arg) === 'sage'));

  async function until<T>(what: string, probe: () => T | undefined | false, ms = 30_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = probe();
      if (value !== undefined && value !== false) {
        return value;
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Runs `body`; if it fails, keeps a screenshot named after the test. */
  async function shot(t: TestContext, body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } catch (error) {
      mkdirSync(artifactsDir, { recursive: true });
      const name = t.name.replace(/[^a-z0-9]+/gi, '-').toLowerCase();
      await page.screenshot({ path: path.join(artifactsDir, `${name}.png`) }).catch(() => undefined);
      writeFileSync(path.join(artifactsDir, `${name}.log`), server.log());
      // The extension's output channel ("Sage"), as the extension host logs it.
      const logs = path.join(server.root, 'user-data', 'logs');
      const channels = readdirSync(logs, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith("Sage.log"));
      writeFileSync(path.join(artifactsDir, `${name}.output.log`), channels.map((file) => readFileSync(path.join(logs, file), 'utf8')).join('\n'));
      throw error;
    }
  }

  /** Types `question` into the panel and presses Enter (again, while the panel has no state yet). */
  async function ask(question: string): Promise<void> {
    const panel = chatPanel(page);
    const turns = await panel.locator('.turn').count();
    for (let attempt = 0; attempt < 10; attempt++) {
      await panel.locator('#input').fill(question);
      await panel.locator('#input').press('Enter');
      const sent = await panel
        .locator('.turn')
        .nth(turns)
        .waitFor({ timeout: 2000 })
        .then(() => true, () => false);
      if (sent) {
        return;
      }
    }
    throw new Error(`the panel did not take the question ${JSON.stringify(question)}`);
  }

  /** Types `text` into VS Code's Chat view (open already) in place of what is there, and sends it; returns the view. */
  async function sendInChatView(text: string): Promise<Locator> {
    const chat = page.locator('.interactive-session').first();
    await chat.locator('.interactive-input-part .monaco-editor').first().click();
    await page.keyboard.press('Control+A');
    await page.keyboard.press('Backspace');
    await page.keyboard.insertText(text);
    await chat.locator('.interactive-input-part').filter({ hasText: text }).waitFor();
    await page.keyboard.press('Escape'); // closes the completion list, if any
    await page.keyboard.press('Enter');
    return chat;
  }

  before(async () => {
    scratch = mkdtempSync(path.join(tmpdir(), 'sage-e2e-'));
    sageHome = path.join(scratch, 'sage-home');
    mkdirSync(sageHome);
    configured = path.join(scratch, 'bin', 'configured-sage');
    mkdirSync(path.dirname(configured));
    symlinkSync(path.join(repoRoot, '.venv', 'bin', 'sage'), configured);
    // An index of two notes, so that answers quote sources that open a file.
    const notes = path.join(scratch, 'notes');
    for (const [file, text] of Object.entries(NOTES)) {
      mkdirSync(path.dirname(path.join(notes, file)), { recursive: true });
      writeFileSync(path.join(notes, file), text);
    }
    execFileSync(configured, ['chat', 'ingest', '--source', notes, '--index', 'notes'], {
      env: { ...process.env, SAGE_HOME: sageHome },
      stdio: 'ignore',
    });
    settings = {
      'sage.server.command': `${configured} lsp`,
      'sage.backend': 'mock',
      'sage.index': 'notes',
      'sage.sageHome': sageHome,
      // No word suggestions over the ghost text (Tab would take them instead).
      'editor.quickSuggestions': { other: 'off', comments: 'off', strings: 'off' },
    };
    [slow, server, browser] = await Promise.all([
      startOpenAIServer(['--delay', '0.05', '--repeat', '40']),
      startCodeServer(settings, { 'double.py': CODE, 'fix.py': FIX_CODE, 'complete.py': COMPLETE_CODE, 'pipelines/.keep': '' }),
      launchBrowser(),
    ]);
    page = await openWindow(browser, server);
  });

  after(async () => {
    // before() may have failed half-way: stop what was started.
    await (browser as Browser | undefined)?.close().catch(() => undefined);
    await (server as CodeServer | undefined)?.stop();
    await (slow as OpenAIServer | undefined)?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('activates and the status bar reaches ready (mock backend)', async (t) => {
    await shot(t, async () => {
      await statusItem(page, /Sage/).first().waitFor({ timeout: 30_000 });
      await statusItem(page, READY).waitFor({ timeout: 30_000 });
    });
  });

  it('starts the configured server command, on every load of the window', async (t) => {
    await shot(t, async () => {
      const seen = new Set<number>();
      for (let load = 0; load < 5; load++) {
        if (load > 0) {
          await page.reload();
          await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
        }
        const started = await until(`load ${load + 1}: a new sage lsp or a start failure`, () => {
          const fresh = configuredServers().find((info) => !seen.has(info.pid));
          return fresh ?? (otherSages().length > 0 ? 'other' : undefined);
        });
        assert.notEqual(started, 'other', `load ${load + 1} started ${JSON.stringify(otherSages())}`);
        if (typeof started !== 'string') {
          seen.add(started.pid);
        }
        assert.equal(await notification(page, DID_NOT_START).count(), 0, `load ${load + 1}: ${(await notificationTexts(page)).join(' | ')}`);
      }
    });
  });

  it('chats in the panel: a streamed answer whose source opens its file', async (t) => {
    await shot(t, async () => {
      await runCommand(page, 'Sage: Open Chat');
      const panel = chatPanel(page);
      await panel.locator('#input').waitFor({ timeout: 30_000 });
      await ask('How do I create a virtual environment?');
      const answer = panel.locator('.turn[data-status="done"]').last();
      await answer.waitFor({ timeout: 30_000 });
      assert.match((await answer.locator('.markdown').textContent()) ?? '', /virtual environment/);
      const link = answer.locator('.source-link').first();
      assert.match((await link.textContent()) ?? '', /Installing sage-lsp/);
      await link.click();
      await editorTab(page, 'install.md').waitFor({ timeout: 15_000 });
    });
  });

  it('Stop ends a streaming answer (and the model stream), New Chat clears the panel', async (t) => {
    await shot(t, async () => {
      // A slow model, chosen in the settings while the window is open.
      server.writeSettings({ ...settings, 'sage.backend': 'compatible', 'sage.baseUrl': slow.baseUrl });
      try {
        await runCommand(page, 'Sage: Open Chat');
        const panel = chatPanel(page);
        await panel.locator('#input').waitFor({ timeout: 30_000 });
        await statusItem(page, /Sage: (?!mock )/).waitFor({ timeout: 30_000 });
        await ask('Tell me a long story.');
        const streaming = panel.locator('.turn[data-status="streaming"] .markdown');
        await streaming.filter({ hasText: /\S/ }).waitFor({ timeout: 30_000 });
        await panel.getByRole('button', { name: /Stop the answer/ }).click();
        await panel.locator('.turn[data-status="cancelled"]').waitFor({ timeout: 10_000 });
        assert.equal(await slow.waitForClientGone(5000), true, 'Stop closes the model stream');

        await panel.getByRole('button', { name: 'New chat' }).click();
        await panel.locator('#empty').waitFor({ state: 'visible' });
        assert.equal(await panel.locator('.turn').count(), 0);
      } finally {
        server.writeSettings(settings);
      }
    });
  });

  it('the status bar follows a backend changed in the settings (back to mock: ready)', async (t) => {
    await shot(t, async () => {
      // The previous test went from mock to the slow model and back, through the settings only.
      await statusItem(page, READY).waitFor({ timeout: 30_000 });
    });
  });

  it("@sage answers in VS Code's own Chat view, with a sage model in the picker and follow-ups", async (t) => {
    await shot(t, async () => {
      const chat = page.locator('.interactive-session').first();
      const input = chat.locator('.interactive-input-part .monaco-editor').first();
      await input.waitFor({ timeout: 20_000 });
      // The sage provider's model is the one selected, so @sage works without signing in.
      await chat.locator('.model-picker-item').filter({ hasText: /Sage/ }).waitFor({ timeout: 20_000 });
      await sendInChatView('@sage what is a map stage?');
      // The mock backend quotes the best passage of the index: the note about map stages.
      const response = chat.locator('.interactive-response').filter({ hasText: 'This is the mock backend' });
      await response.waitFor({ timeout: 30_000 });
      assert.match((await response.textContent()) ?? '', /A map stage applies a function to every record/);
      await chat.locator('.interactive-followup-reply').first().waitFor({ timeout: 15_000 });
    });
  });

  /** Opens `name` and puts the cursor in its editor, at the start of the file. */
  async function editFile(name: string, text: string): Promise<void> {
    await openFile(page, name);
    const lines = page.locator('.editor-instance .monaco-editor .view-lines').filter({ hasText: text });
    await lines.waitFor({ timeout: 15_000 });
    await lines.click();
    await page.keyboard.press('Control+Home');
  }

  /** Saves the active editor and returns the file as it is on disk once it differs from `from`. */
  async function saved(name: string, from: string): Promise<string> {
    await page.keyboard.press('Control+S');
    const file = path.join(server.workspace, name);
    return until(`${name} to be saved`, () => {
      const text = readFileSync(file, 'utf8');
      // Empty while VS Code writes it (truncated first): not saved yet.
      return text !== from && text !== '' ? text : undefined;
    });
  }

  /** Selects line 2 of fix.py, the line the code actions and `/explain` work on. */
  async function selectFixLine(): Promise<void> {
    await editFile('fix.py', 'total');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Shift+End');
    await page.locator('.editor-instance .monaco-editor .selected-text').first().waitFor();
  }

  /** Opens the light bulb's menu (Ctrl+.) on the selection and picks `title`. */
  async function codeAction(title: string): Promise<void> {
    const item = page.locator('.action-widget .monaco-list-row').filter({ hasText: title });
    // The server's actions arrive once the selection reached it: ask again until they are there.
    for (let attempt = 0; attempt < 10; attempt++) {
      await page.keyboard.press('Control+.');
      if (await item.first().waitFor({ timeout: 3000 }).then(() => true, () => false)) {
        break;
      }
      await page.keyboard.press('Escape');
    }
    await item.first().click();
  }

  it('asks about the selection: the code goes as a reference, shown as a path:lines chip', async (t) => {
    await shot(t, async () => {
      await editFile('double.py', 'double');
      await page.keyboard.press('Control+A');
      await page.locator('.editor-instance .monaco-editor .selected-text').first().waitFor();
      await runCommand(page, 'Sage: Ask About Selection');
      await answerInput(page, 'Ask Sage about the selection');
      const panel = chatPanel(page);
      const turn = panel.locator('.turn').filter({ has: panel.locator('.chip', { hasText: 'double.py:1-2' }) }).last();
      await turn.locator('.question-text').waitFor({ timeout: 30_000 });
      // The question is the person's; the code is not pasted into it (the server reads it).
      assert.equal(await turn.locator('.question-text').textContent(), 'Explain this code.');
      await panel.locator('.turn[data-status="done"]').filter({ hasText: 'double.py:1-2' }).waitFor({ timeout: 30_000 });
      assert.equal(await turn.locator('.chip[data-truncated="false"]').count(), 1);
    });
  });

  it('offers Sage: explain and Sage: fix on a selection; explain opens the chat with it, fix replaces exactly it and Ctrl+Z restores the file', async (t) => {
    await shot(t, async () => {
      await selectFixLine();
      await codeAction('Sage: explain');
      const panel = chatPanel(page);
      await panel.locator('.turn[data-status="done"]').filter({ has: panel.locator('.chip', { hasText: 'fix.py:2' }) }).waitFor({ timeout: 30_000 });

      await selectFixLine();
      await codeAction('Sage: fix');
      const fixed = await saved('fix.py', FIX_CODE);
      const [first, selected, rest] = ['def total(values):\n', '    result = sum(values)', '\n    return result\n'];
      assert.ok(fixed.startsWith(first) && fixed.endsWith(rest), `only line 2 changes: ${JSON.stringify(fixed)}`);
      assert.notEqual(fixed.slice(first.length, fixed.length - rest.length), selected);

      await page.keyboard.press('Control+Z');
      assert.equal(await saved('fix.py', fixed), FIX_CODE);
    });
  });

  it('@sage /explain sends the selection as a reference, which the server reads', async (t) => {
    await shot(t, async () => {
      await selectFixLine();
      const chat = await sendInChatView('@sage /explain');
      const response = chat.locator('.interactive-response').last();
      await response.filter({ hasText: 'To talk to a real model' }).waitFor({ timeout: 30_000 });
      const text = (await response.textContent()) ?? '';
      // The selection shows as the answer's reference; the mock repeats what it was sent: the
      // server's labelled excerpt (not code pasted by the extension).
      assert.match(text, /Used 1 reference/);
      assert.match(text, /fix\.py:2[\s\S]*result = sum\(values\)[\s\S]*Explain this code\./);
    });
  });

  it('shows the model\'s inline completion as ghost text at the cursor, and Tab accepts it', async (t) => {
    await shot(t, async () => {
      await editFile('complete.py', 'half');
      await page.keyboard.press('Control+End');
      await page.keyboard.type('value = ');
      const ghost = page.locator('.editor-instance .monaco-editor').locator('.ghost-text-decoration, .ghost-text').filter({ hasText: 'sage_mock_completion' });
      await ghost.first().waitFor({ timeout: 30_000 });
      await page.keyboard.press('Tab');
      // The mock backend completes with `sage_mock_completion(line=N)`, N the cursor's line in its prompt.
      assert.match(await saved('complete.py', COMPLETE_CODE), /^def half\(x\):\n {4}return x \/ 2\nvalue = sage_mock_completion\(line=\d+\)$/);
    });
  });

  it('builds a pipeline into its file', async (t) => {
    await shot(t, async () => {
      await runCommand(page, 'Sage: Build Pipeline');
      await answerInput(page, 'Build a SAGE pipeline', 'count the words of text files');
      // The save dialog (the simple one, a quick input) offers pipelines/<name>.yaml.
      const input = page.locator('.quick-input-widget input.input');
      await input.waitFor();
      await page.waitForFunction(() => /\.ya?ml$/.test(document.querySelector<HTMLInputElement>('.quick-input-widget input.input')?.value ?? ''));
      await answerInput(page, 'Save the pipeline as');
      await notification(page, /Sage: pipeline .* built/).waitFor({ timeout: 60_000 });
      const written = readdirSync(path.join(server.workspace, 'pipelines')).filter((name) => /\.ya?ml$/.test(name));
      assert.equal(written.length, 1, `pipelines/: ${written.join(', ')}`);
      await editorTab(page, written[0] ?? '').waitFor();
    });
  });

  it('a window reload brings the chat panel back, and the conversation goes on where it was', async (t) => {
    await shot(t, async () => {
      await runCommand(page, 'Sage: Open Chat');
      const panel = chatPanel(page);
      await panel.locator('#input').waitFor({ timeout: 30_000 });
      await panel.getByRole('button', { name: 'New chat' }).click();
      await panel.locator('#empty').waitFor({ state: 'visible' });
      // Words no note holds: the mock answers without a source and counts the conversation's turns.
      await ask('zebra quartz one');
      await panel.locator('.turn[data-status="done"]').filter({ hasText: '(turn 1)' }).waitFor({ timeout: 30_000 });
      const before = new Set(configuredServers().map((info) => info.pid));

      await runCommand(page, 'Developer: Reload Window');
      await until('the sage lsp of the reloaded window', () => configuredServers().find((info) => !before.has(info.pid)), 60_000);
      await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
      const restored = chatPanel(page);
      await restored.locator('.turn').filter({ hasText: 'zebra quartz one' }).waitFor({ timeout: 60_000 });
      assert.match((await restored.locator('.turn[data-status="done"]').first().textContent()) ?? '', /\(turn 1\)/);

      // The new server process goes on with the conversation: the question is its second turn.
      await ask('zebra quartz two');
      await restored.locator('.turn[data-status="done"]').filter({ hasText: '(turn 2)' }).waitFor({ timeout: 30_000 });
    });
  });

  it('Stop Model, Show Services, Open Service Log and Restart Server answer through the palette', async (t) => {
    await shot(t, async () => {
      await runCommand(page, 'Sage: Stop Model');
      await notification(page, /Sage: mock backend stopped/).waitFor({ timeout: 15_000 });
      await runCommand(page, 'Sage: Show Services');
      await notification(page, /no model services are running/).waitFor({ timeout: 15_000 });
      await page.keyboard.press('Escape');
      await runCommand(page, 'Sage: Open Service Log');
      await notification(page, /no model services are running/).first().waitFor({ timeout: 15_000 });
      const texts = await notificationTexts(page);
      assert.ok(!texts.some((text) => /invalid params/i.test(text)), texts.join(' | '));

      const before = new Set(configuredServers().map((info) => info.pid));
      await runCommand(page, 'Sage: Restart Server');
      const fresh = await until('a restarted sage lsp', () => configuredServers().find((info) => !before.has(info.pid)));
      assert.ok(alive(fresh.pid));
      await statusItem(page, READY).waitFor({ timeout: 30_000 });
    });
  });

  it('reports a server that dies at start, with its message', async (t) => {
    await shot(t, async () => {
      const failing = path.join(scratch, 'bin', 'failing-sage');
      writeFileSync(failing, '#!/bin/sh\necho "sage: cannot read /nonexistent/config.toml: no such file" >&2\nexit 1\n');
      chmodSync(failing, 0o755);
      server.writeSettings({ ...settings, 'sage.server.command': `${failing} lsp` });
      try {
        const shown = notification(page, DID_NOT_START);
        await shown.first().waitFor({ timeout: 30_000 });
        const texts = await notificationTexts(page);
        assert.ok(!texts.some((text) => text.includes('EPIPE')), texts.join(' | '));
        // The cause is what the server printed before it exited.
        assert.match((await shown.first().textContent()) ?? '', /cannot read \/nonexistent\/config\.toml/);
      } finally {
        const before = new Set(configuredServers().map((info) => info.pid));
        server.writeSettings(settings);
        await until('the configured server again', () => configuredServers().find((info) => !before.has(info.pid)));
      }
    });
  });

  it('closing the window ends sage lsp', async (t) => {
    await shot(t, async () => {
      const running = await until('a running sage lsp', () => {
        const found = configuredServers();
        return found.length ? found : undefined;
      });
      await page.close();
      // code-server keeps a closed window's extension host for --reconnection-grace-time (30 s).
      await until('sage lsp to end', () => !running.some((info) => alive(info.pid)), 45_000);
    });
  });
});
