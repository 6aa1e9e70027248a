/**
 * The chat panel end to end: its real HTML, CSP and bundled script in headless Chromium, driven
 * like a person would, with the host controller connected to a real `sage lsp`.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ChatController } from '../src/chatController';
import { Methods, type HistoryResult } from '../src/protocol';
import { startOpenAIServer, type OpenAIServer } from './support/openaiServer';
import { CHROMIUM, CHROMIUM_ARGS, openPanel, servePanel, type PanelPage, type PanelServer } from './support/panelPage';
import { resultsDir } from './support/paths';
import { closedPort } from './support/ports';
import { waitFor } from './support/processes';
import { startSageServer, type SageServer } from './support/sageServer';
import { RecordingEditor } from './support/stubEditor';

const missing = !existsSync(CHROMIUM);
if (missing && process.env.SAGE_REQUIRE_ALL === '1') {
  throw new Error(`${CHROMIUM} is missing and SAGE_REQUIRE_ALL=1`);
}

const CODE = 'def double(x):\n    return x * 2\n';

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(resultsDir, name) });
}

/** The texts a streaming answer shows, each longer than the one before. */
async function streamingStates(page: Page, count: number): Promise<string[]> {
  const states: string[] = [];
  let shown = 0;
  while (states.length < count) {
    const handle = await page.waitForFunction((length) => {
      const text = document.querySelector('.turn[data-status="streaming"] .markdown')?.textContent ?? '';
      return text.length > length ? text : false;
    }, shown);
    const text = await handle.jsonValue();
    if (typeof text !== 'string') {
      throw new Error('no streaming text');
    }
    states.push(text);
    shown = text.length;
  }
  return states;
}

async function ask(page: Page, question: string): Promise<void> {
  await page.getByRole('textbox', { name: /Question/ }).fill(question);
  await page.keyboard.press('Enter');
}

describe('chat panel in Chromium', { skip: missing ? `${CHROMIUM} is missing` : false }, () => {
  let fast: OpenAIServer;
  let slow: OpenAIServer;
  let server: SageServer;
  let panelServer: PanelServer;
  let profile: string;
  let context: BrowserContext;
  let controller: ChatController;
  let panel: PanelPage;
  const editor = new RecordingEditor();

  before(async () => {
    mkdirSync(resultsDir, { recursive: true });
    profile = mkdtempSync(path.join(tmpdir(), 'sage-chromium-'));
    [fast, slow, panelServer, context] = await Promise.all([
      startOpenAIServer(['--delay', '0.06']),
      startOpenAIServer(['--delay', '0.05', '--repeat', '40']),
      servePanel(),
      chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        args: CHROMIUM_ARGS,
        headless: true,
        viewport: { width: 640, height: 720 },
        colorScheme: 'dark',
      }),
    ]);
    server = await startSageServer({ initializationOptions: { backend: 'compatible', baseUrl: fast.baseUrl, model: 'tiny-model' } });
    controller = new ChatController(server.connection, editor);
    panel = await openPanel(context, panelServer.url, controller);
  });

  after(async () => {
    controller.dispose();
    await panel.close().catch(() => undefined);
    await context.close();
    await Promise.all([server.stop(), fast.stop(), slow.stop(), panelServer.close()]);
    rmSync(profile, { recursive: true, force: true });
  });

  it('streams an answer in, then shows it as Markdown with a highlighted code block', async () => {
    const { page } = panel;
    await ask(page, 'How do I write a map stage?');
    const states = await streamingStates(page, 3);
    await screenshot(page, '01-streaming.png');
    assert.match(states[0] ?? '', /^Here/);
    assert.ok(states.every((text, i) => i === 0 || text.length > (states[i - 1]?.length ?? 0)));
    assert.equal(await page.locator('#stop').isEnabled(), true);

    const answer = page.locator('.turn[data-status="done"]');
    await answer.waitFor();
    assert.equal(await answer.locator('.markdown strong').textContent(), 'map');
    assert.equal(await answer.locator('.code-lang').textContent(), 'python');
    assert.equal(await answer.locator('pre code').textContent(), CODE);
    assert.equal(await answer.locator('pre code .hljs-keyword').first().textContent(), 'def');
    assert.equal(await answer.locator('pre code .hljs-title').first().textContent(), 'double');
    assert.match((await answer.locator('.meta').textContent()) ?? '', /^\d+\.\d s/);
    assert.equal(await page.locator('#stop').isEnabled(), false);

    await answer.getByRole('button', { name: 'Copy code' }).click();
    await answer.getByRole('button', { name: 'Insert code at the cursor' }).click();
    await waitFor(() => editor.calls.length === 2, 'copy and insert');
    assert.deepEqual(editor.calls, [
      ['copy', CODE],
      ['insert', CODE],
    ]);
    await screenshot(page, '02-answer.png');
    assert.deepEqual(await panel.problems(), []);
  });

  it('Stop (button or Escape) cancels a slow answer and keeps what arrived', async () => {
    const { page } = panel;
    await server.pushSettings({ baseUrl: slow.baseUrl });
    await ask(page, 'Tell me everything about map stages.');
    await streamingStates(page, 12);
    await page.getByRole('button', { name: /Stop the answer/ }).click();
    const stopped = page.locator('.turn').nth(1);
    await page.locator('.turn[data-status="cancelled"]').waitFor();
    assert.equal(await stopped.locator('.meta').textContent(), 'cancelled');
    const partial = (await stopped.locator('.markdown').textContent()) ?? '';
    assert.ok(partial.length > 0);
    assert.equal(await page.locator('#send').isEnabled(), true);
    await sleep(300);
    assert.equal(await stopped.locator('.markdown').textContent(), partial, 'nothing arrives after Stop');
    assert.ok(await slow.waitForClientGone(), 'the HTTP stream to the model was closed');
    await screenshot(page, '03-cancelled.png');

    await ask(page, 'And briefly?');
    await streamingStates(page, 2);
    await page.keyboard.press('Escape');
    await waitFor(() => controller.current.turns[2]?.status === 'cancelled', 'the Escape cancel');
    await page.locator('.turn').nth(2).and(page.locator('[data-status="cancelled"]')).waitFor();
  });

  it('gets the conversation and the draft back when the webview is rebuilt (panel hidden and shown)', async () => {
    const { page } = panel;
    const before = await page.locator('.turn .markdown').allTextContents();
    await page.getByRole('textbox', { name: /Question/ }).fill('an unsent draft');
    await page.reload();
    await page.locator('.turn').nth(2).waitFor();
    assert.deepEqual(await page.locator('.turn').evaluateAll((turns) => turns.map((t) => (t as HTMLElement).dataset.status)), [
      'done',
      'cancelled',
      'cancelled',
    ]);
    assert.deepEqual(await page.locator('.turn .markdown').allTextContents(), before);
    assert.equal(await page.locator('#input').inputValue(), 'an unsent draft');
  });

  it('New Chat empties the conversation and resets the old one on the server', async () => {
    const { page } = panel;
    const old = controller.current.chatId;
    await page.getByRole('button', { name: 'New chat' }).click();
    await page.locator('#empty').waitFor({ state: 'visible' });
    assert.equal(await page.locator('.turn').count(), 0);
    assert.notEqual(controller.current.chatId, old);
    await sleep(300);
    const history = await server.connection.sendRequest<HistoryResult>(Methods.chatHistory, { chatId: old });
    assert.deepEqual(history.messages, []);
    await page.getByRole('textbox', { name: /Question/ }).fill('');
    await screenshot(page, '04-new-chat.png');
  });

  it('shows a server error in one line, in a failed turn, and puts the question back in the input', async () => {
    const { page } = panel;
    await server.pushSettings({ baseUrl: `http://127.0.0.1:${await closedPort()}/v1` });
    await ask(page, 'Is the model there?');
    const error = page.getByRole('alert');
    await error.waitFor({ state: 'visible' });
    assert.match((await error.textContent()) ?? '', /^cannot reach http:\/\/127\.0\.0\.1:\d+\/v1: connection refused/);
    assert.equal(await page.locator('#input').inputValue(), 'Is the model there?');
    const failed = page.locator('.turn[data-status="error"]');
    assert.equal(await failed.count(), 1);
    assert.equal(await failed.locator('.question-text').textContent(), 'Is the model there?');
    assert.match((await failed.locator('.meta').textContent()) ?? '', /^failed: cannot reach http:\/\/127\.0\.0\.1:\d+\/v1: connection refused/);
    await screenshot(page, '05-error.png');
    assert.deepEqual(await panel.problems(), []);
  });

  it('links the sources of an answer to their files', async () => {
    const mock = await startSageServer({ initializationOptions: { backend: 'mock', index: 'notes' } });
    const sources = new ChatController(mock.connection, editor);
    const page2 = await openPanel(context, panelServer.url, sources);
    try {
      await mock.ingestNotes('notes');
      await ask(page2.page, 'How do I create a virtual environment?');
      const link = page2.page.locator('.turn[data-status="done"] .source-link').first();
      await link.waitFor();
      assert.match((await link.textContent()) ?? '', /^\[1\] Installing sage-lsp/);
      assert.equal(await page2.page.locator('.source-path').first().textContent(), 'guide/install.md');
      // The mock quotes the passage as Markdown: its inline code is rendered as code.
      assert.equal(await page2.page.locator('.turn[data-status="done"] .markdown code').filter({ hasText: 'python -m venv .venv' }).count(), 1);
      await link.click();
      await waitFor(() => editor.calls.at(-1)?.[0] === 'openSource', 'the source to open');
      const [call, opened] = editor.calls.at(-1) ?? [];
      assert.equal(call, 'openSource');
      assert.match(String(opened), /^file:\/\/\/.*\/notes\/guide\/install\.md$/);
      await screenshot(page2.page, '06-sources.png');
      assert.deepEqual(await page2.problems(), []);
    } finally {
      sources.dispose();
      await page2.close();
      await mock.stop();
    }
  });
});
