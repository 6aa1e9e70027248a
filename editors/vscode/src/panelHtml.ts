/**
 * The chat webview's HTML and its Content-Security-Policy. Pure: the extension and the browser
 * test build the page with the same function.
 */
import { randomBytes } from 'node:crypto';

/** Where the page's resources live, as webview URIs. */
export interface PanelHtmlOptions {
  /** `webview.cspSource`: the origin the script and style are loaded from. */
  cspSource: string;
  /** The nonce the one script tag carries. */
  nonce: string;
  scriptUri: string;
  styleUri: string;
}

/** A fresh nonce for one page. */
export function makeNonce(): string {
  return randomBytes(18).toString('base64');
}

/** The page's policy: nothing by default, the style from `cspSource`, the script by nonce. */
export function contentSecurityPolicy(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `style-src ${cspSource}`,
    `font-src ${cspSource}`,
    `img-src ${cspSource} data:`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
}

function attribute(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
}

/** The whole page: toolbar, conversation, error line and input. */
export function renderPanelHtml(options: PanelHtmlOptions): string {
  const csp = attribute(contentSecurityPolicy(options.cspSource, options.nonce));
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${attribute(options.styleUri)}">
<title>Sage Chat</title>
</head>
<body>
<header class="toolbar">
  <h1>Sage Chat</h1>
  <button type="button" id="stop" class="secondary" aria-label="Stop the answer (Escape)" title="Stop (Escape)" disabled>Stop</button>
  <button type="button" id="new-chat" class="secondary" aria-label="New chat" title="Start a new conversation">New Chat</button>
</header>
<main id="conversation" role="log" aria-live="polite" aria-label="Conversation">
  <p id="empty" class="empty">Ask about your code, your model or a SAGE pipeline.</p>
</main>
<div id="error" class="error" role="alert" hidden></div>
<form id="ask" class="ask">
  <textarea id="input" rows="3" aria-label="Question (Enter sends, Shift+Enter adds a line)" placeholder="Ask Sage… (Enter sends, Shift+Enter adds a line)"></textarea>
  <button type="submit" id="send" aria-label="Send question">Send</button>
</form>
<script nonce="${attribute(options.nonce)}" src="${attribute(options.scriptUri)}"></script>
</body>
</html>
`;
}
