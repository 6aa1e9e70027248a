/**
 * The chat panel in headless Chromium: its real HTML (with the real CSP) and bundled script served
 * from localhost, an `acquireVsCodeApi` stand-in bridging the page to a host `ChatController`,
 * and VS Code's dark theme variables.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import * as path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import type { ChatController } from '../../src/chatController';
import { makeNonce, renderPanelHtml } from '../../src/panelHtml';
import type { WebviewMessage } from '../../src/panelMessages';
import { extensionRoot } from './paths';

/** Chromium as Debian installs it (never downloaded). */
export const CHROMIUM = '/usr/bin/chromium';

/** Chromium's flags for the tests: headless, offline, nothing in the background. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A few of the variables VS Code's Dark Modern theme gives a webview. */
const DARK_THEME: Record<string, string> = {
  '--vscode-font-family': 'system-ui, "Ubuntu", "Droid Sans", sans-serif',
  '--vscode-font-size': '13px',
  '--vscode-font-weight': 'normal',
  '--vscode-editor-font-family': '"DejaVu Sans Mono", monospace',
  '--vscode-editor-font-size': '13px',
  '--vscode-foreground': '#cccccc',
  '--vscode-descriptionForeground': '#9d9d9d',
  '--vscode-editor-background': '#1f1f1f',
  '--vscode-editor-foreground': '#cccccc',
  '--vscode-sideBar-background': '#181818',
  '--vscode-panel-border': '#2b2b2b',
  '--vscode-button-background': '#0078d4',
  '--vscode-button-foreground': '#ffffff',
  '--vscode-button-hoverBackground': '#026ec1',
  '--vscode-button-secondaryBackground': '#313131',
  '--vscode-button-secondaryForeground': '#cccccc',
  '--vscode-button-secondaryHoverBackground': '#3c3c3c',
  '--vscode-input-background': '#313131',
  '--vscode-input-foreground': '#cccccc',
  '--vscode-input-border': '#3c3c3c',
  '--vscode-input-placeholderForeground': '#989898',
  '--vscode-focusBorder': '#0078d4',
  '--vscode-textLink-foreground': '#4daafc',
  '--vscode-textLink-activeForeground': '#4daafc',
  '--vscode-textCodeBlock-background': '#2b2b2b',
  '--vscode-textBlockQuote-background': '#2b2b2b',
  '--vscode-textBlockQuote-border': '#616161',
  '--vscode-errorForeground': '#f85149',
  '--vscode-inputValidation-errorBackground': '#5a1d1d',
  '--vscode-inputValidation-errorBorder': '#be1100',
  '--vscode-editorWarning-foreground': '#cca700',
  '--vscode-editorGroupHeader-tabsBackground': '#181818',
  '--vscode-editorCursor-foreground': '#aeafad',
  '--vscode-debugTokenExpression-boolean': '#4e94ce',
  '--vscode-debugTokenExpression-string': '#ce9178',
  '--vscode-debugTokenExpression-number': '#b5cea8',
  '--vscode-debugTokenExpression-name': '#c586c0',
  '--vscode-symbolIcon-functionForeground': '#b180d7',
  '--vscode-symbolIcon-classForeground': '#ee9d28',
};

/** Runs before the page's script: the VS Code API stand-in, the theme, a CSP violation log. */
const SHIM = `(() => {
  const KEY = 'sage-webview-state';
  window.__cspViolations = [];
  document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
  window.acquireVsCodeApi = () => ({
    postMessage: (message) => { void window.__sageToHost(message); },
    getState: () => JSON.parse(sessionStorage.getItem(KEY) || 'null') ?? undefined,
    setState: (state) => sessionStorage.setItem(KEY, JSON.stringify(state)),
  });
  const theme = ${JSON.stringify(DARK_THEME)};
  document.addEventListener('DOMContentLoaded', () => {
    document.body.classList.add('vscode-dark');
    for (const [name, value] of Object.entries(theme)) document.documentElement.style.setProperty(name, value);
  });
})();`;

const FILES: Record<string, [string, string]> = {
  '/dist/webview.js': ['dist/webview.js', 'text/javascript'],
  '/media/chat.css': ['media/chat.css', 'text/css'],
};

/** A localhost server for the panel page; `url` is the page. */
export interface PanelServer {
  url: string;
  close(): Promise<void>;
}

/** Serves the page as the extension builds it, with the origin as the webview's cspSource. */
export async function servePanel(): Promise<PanelServer> {
  let origin = '';
  const server: Server = createServer((request, response) => {
    const file = FILES[request.url ?? ''];
    if (request.url === '/') {
      const html = renderPanelHtml({
        cspSource: origin,
        nonce: makeNonce(),
        scriptUri: `${origin}/dist/webview.js`,
        styleUri: `${origin}/media/chat.css`,
      });
      response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(html);
    } else if (request.url === '/favicon.ico') {
      response.writeHead(204).end(); // a browser tab asks for one; a webview does not
    } else if (file) {
      response.writeHead(200, { 'Content-Type': file[1] }).end(readFileSync(path.join(extensionRoot, file[0])));
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') {
    throw new Error('the panel server has no port');
  }
  origin = `http://127.0.0.1:${address.port}`;
  return {
    url: `${origin}/`,
    close: () => new Promise((resolve) => server.close(() => { resolve(); })),
  };
}

/** A panel page wired to `controller`: its messages go to the host, the host's actions come back. */
export interface PanelPage {
  page: Page;
  /** CSP violations and script errors seen so far. */
  problems(): Promise<string[]>;
  close(): Promise<void>;
}

/** Opens the panel at `url` in a new page of `context`, bridged to `controller`. */
export async function openPanel(context: BrowserContext, url: string, controller: ChatController): Promise<PanelPage> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') {
      errors.push(`console: ${message.text()}`);
    }
  });
  await page.exposeFunction('__sageToHost', (message: WebviewMessage) => controller.handleMessage(message));
  await page.addInitScript(SHIM);
  let delivery = Promise.resolve();
  const subscription = controller.onAction((action) => {
    delivery = delivery
      .then(() => page.evaluate((data) => { window.postMessage(data, '*'); }, action))
      .catch(() => undefined);
  });
  await page.goto(url);
  return {
    page,
    async problems() {
      const violations = await page.evaluate(() => (window as unknown as { __cspViolations: string[] }).__cspViolations);
      return [...violations.map((v) => `CSP: ${v}`), ...errors];
    },
    async close() {
      subscription.dispose();
      await page.close();
    },
  };
}
