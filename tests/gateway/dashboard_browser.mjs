// The gateway's dashboard in Debian's Chromium, driven by playwright-core (the VS Code
// extension's copy): a wrong key is refused with a message and asked for again; with
// `/#key=KEY` the model is listed, Start makes it ready with its port, a chat request shows in
// the recent requests with its TTFT, its service's log tail opens, Stop stops it.
//
// node dashboard_browser.mjs '{"url", "key", "model", "startSeconds", "artifacts"}'
// prints one JSON line of what the page showed; exits 1 (with the reason on stderr) otherwise.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(path.join(repo, 'editors', 'vscode', 'package.json'));
const { chromium } = require('playwright-core');

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const options = JSON.parse(process.argv[2]);
const { url, key, model } = options;
const startMs = (options.startSeconds ?? 30) * 1000;
const seen = {};

/** The text of `selector`, once `check(text)` holds (within `ms`). */
async function waitText(page, selector, check, ms, what) {
  const until = Date.now() + ms;
  let text = null;
  while (Date.now() < until) {
    const node = page.locator(selector);
    text = (await node.count()) ? (await node.first().textContent())?.trim() ?? '' : null;
    if (text !== null && check(text)) return text;
    await page.waitForTimeout(100);
  }
  throw new Error(`not within ${ms} ms: ${what} (${selector} shows ${JSON.stringify(text)})`);
}

/** The text of each cell of `row` named in `cells` (class -> field of `seen`), once shown. */
async function cellsShown(page, row, cells, ms) {
  for (const [cell, field] of Object.entries(cells)) {
    seen[field] = await waitText(page, `${row} .${cell}`, (t) => t.length > 0, ms,
      `${row} shows its ${cell}`);
  }
}

async function wrongKeyThenRightOne(browser) {
  const page = await browser.newPage();
  await page.goto(`${url}/#key=wrong-key`);
  seen.wrongKeyMessage = await waitText(page, '#key-error', (t) => t.length > 0, 10_000,
    'the refused key is told');
  seen.keyFormShown = await page.locator('#key-form').isVisible();
  seen.mainHiddenOnWrongKey = await page.locator('#main').isHidden();
  seen.fragmentKept = await page.evaluate(() => location.hash);
  await page.fill('#key-input', key);
  await page.click('#key-form button[type=submit]');
  seen.modelAfterTypedKey = await waitText(page, `#models tr[data-model="${model}"] td`,
    (t) => t.length > 0, 10_000, 'the model is listed after the key was typed in');
  await page.close();
}

async function startRequestLogStop(browser) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  await page.goto(`${url}/#key=${encodeURIComponent(key)}`);
  const row = `#models tr[data-model="${model}"]`;
  seen.initialState = await waitText(page, `${row} .state`, (t) => t.length > 0, 10_000,
    'the model is listed');
  seen.fragmentAfterLoad = await page.evaluate(() => location.hash);
  seen.keyFormHidden = await page.locator('#key-form').isHidden();

  await page.click(`${row} button.start`);
  seen.startedState = await waitText(page, `${row} .state`, (t) => t === 'ready', startMs,
    'the model is ready');
  seen.port = await waitText(page, `${row} .port`, (t) => /^\d+$/.test(t), 5_000, 'its port');
  const service = `#services tr[data-service="${model}"]`;
  await cellsShown(page, service, { port: 'servicePort', holders: 'holders', uptime: 'uptime' },
    5_000);

  const answer = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      model, stream: true, max_tokens: 8, messages: [{ role: 'user', content: 'hi' }],
    }),
  });
  seen.chatStatus = answer.status;
  seen.chatBody = (await answer.text()).slice(0, 200);
  const request = `#requests tr[data-model="${model}"]`;
  await cellsShown(page, request, {
    status: 'requestStatus', ttft: 'requestTtft', tokens: 'requestTokens', rate: 'requestRate',
  }, 10_000);
  seen.chartLine = await page.locator(`#chart polyline[data-model="${model}"]`)
    .getAttribute('points', { timeout: 5_000 });

  await page.click(`${service} button.log`);
  seen.log = await waitText(page, '#log', (t) => t.length > 0, 10_000, 'the log tail');
  seen.logName = await page.locator('#log-name').textContent();

  await page.click(`${row} button.stop`);
  seen.stoppedState = await waitText(page, `${row} .state`, (t) => t === 'stopped', 60_000,
    'the model is stopped');
  seen.servicesAfterStop = await page.locator('#services tbody tr').count();
  seen.logPathAfterStop = await waitText(page, '#log-path', (t) => t.includes('no log'), 10_000,
    'the log tail tells its service is gone');
  seen.logAfterStop = await page.locator('#log').textContent();
  seen.noticeAfterStop = await page.locator('#notice').textContent();
  if (options.artifacts) {
    mkdirSync(options.artifacts, { recursive: true });
    await page.screenshot({ path: path.join(options.artifacts, 'dashboard.png'), fullPage: true });
  }
  await page.close();
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
let failed = null;
try {
  await wrongKeyThenRightOne(await browser.newContext());
  await startRequestLogStop(await browser.newContext());
} catch (error) {
  failed = error;
} finally {
  await browser.close();
}
process.stdout.write(`${JSON.stringify(seen)}\n`);
if (failed) {
  process.stderr.write(`${failed.stack ?? failed}\n`);
  process.exit(1);
}
