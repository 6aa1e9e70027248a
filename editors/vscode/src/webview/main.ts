/**
 * The chat webview: applies the host's panel actions to its copy of the state, renders it, and
 * posts what the person does back to the host. No inline handlers, no eval (strict CSP).
 */
import type { WebviewMessage } from '../panelMessages';
import type { PanelAction, PanelState, Turn } from '../panelState';
import { isBusy, reduce } from '../panelState';
import { renderMarkdown } from './markdown';

interface VsCodeApi {
  postMessage(message: WebviewMessage): void;
  getState(): unknown;
  setState(state: SavedWebviewState): void;
}

/** What the webview keeps across reloads: the draft and the conversation (see ChatPanel's serializer). */
interface SavedWebviewState {
  draft: string;
  panel?: PanelState;
}

declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();

function element<T extends HTMLElement>(id: string, type: new () => T): T {
  const found = document.getElementById(id);
  if (!(found instanceof type)) {
    throw new Error(`the page has no ${type.name} #${id}`);
  }
  return found;
}

const conversation = element('conversation', HTMLElement);
const empty = element('empty', HTMLElement);
const errorLine = element('error', HTMLElement);
const form = element('ask', HTMLFormElement);
const input = element('input', HTMLTextAreaElement);
const send = element('send', HTMLButtonElement);
const stop = element('stop', HTMLButtonElement);
const newChat = element('new-chat', HTMLButtonElement);

let state: PanelState | undefined;
const turnElements = new Map<number, HTMLElement>();
const renderedTurns = new Map<number, Turn>();
let renderScheduled = false;

function post(message: WebviewMessage): void {
  vscode.postMessage(message);
}

function saveDraft(): void {
  vscode.setState({ draft: input.value, panel: state });
}

function child(parent: HTMLElement, tag: string, className: string, text?: string): HTMLElement {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  parent.append(node);
  return node;
}

function createTurn(turn: Turn): HTMLElement {
  const section = document.createElement('section');
  section.className = 'turn';
  section.dataset.turnId = String(turn.id);
  const question = child(section, 'div', 'question');
  child(question, 'span', 'who', 'You');
  child(question, 'div', 'question-text', turn.question);
  child(question, 'ul', 'attached').setAttribute('aria-label', 'Attached code');
  const answer = child(section, 'div', 'answer');
  child(answer, 'span', 'who', 'Sage');
  child(answer, 'div', 'markdown');
  child(answer, 'div', 'meta');
  child(answer, 'nav', 'sources').setAttribute('aria-label', 'Sources');
  return section;
}

function metaText(turn: Turn): string {
  switch (turn.status) {
    case 'streaming':
      return 'writing…';
    case 'cancelled':
      return 'cancelled';
    case 'error':
      return turn.error ? `failed: ${turn.error}` : 'failed';
    case 'done': {
      const parts = [`${(turn.seconds ?? 0).toFixed(1)} s`];
      if (turn.tokensPerSecond) {
        parts.push(`${Math.round(turn.tokensPerSecond)} tokens/s`);
      }
      if (turn.finishReason === 'length') {
        parts.push('cut at the token limit');
      }
      return parts.join(' · ');
    }
  }
}

function renderSources(nav: HTMLElement, turn: Turn): void {
  nav.replaceChildren();
  nav.hidden = turn.sources.length === 0;
  if (nav.hidden) {
    return;
  }
  child(nav, 'span', 'sources-label', 'Sources');
  const list = child(nav, 'ol', 'sources-list');
  for (const source of turn.sources) {
    const item = child(list, 'li', 'source');
    const link = child(item, 'a', 'source-link', `[${source.n}] ${source.heading ? `${source.title} — ${source.heading}` : source.title}`);
    link.setAttribute('href', '#');
    link.dataset.path = source.uri ?? source.path;
    link.title = `Open ${source.path}`;
    child(item, 'span', 'source-path', source.path);
  }
}

/** The chips of the documents attached to the question (`path:lines`, marked when the server shortened one). */
function renderAttached(list: HTMLElement, turn: Turn): void {
  const attached = turn.attached ?? [];
  list.replaceChildren();
  list.hidden = attached.length === 0;
  for (const chip of attached) {
    const item = child(list, 'li', 'chip');
    item.dataset.truncated = String(chip.truncated);
    const link = child(item, 'a', 'attached-link', chip.label);
    link.setAttribute('href', '#');
    link.dataset.path = chip.uri;
    link.title = chip.truncated ? `Open ${chip.label} (shortened to fit the context budget)` : `Open ${chip.label}`;
    if (chip.truncated) {
      child(item, 'span', 'chip-note', 'shortened');
    }
  }
}

function updateTurn(section: HTMLElement, turn: Turn): void {
  section.dataset.status = turn.status;
  section.setAttribute('aria-busy', String(turn.status === 'streaming'));
  const markdown = section.querySelector<HTMLElement>('.markdown');
  const meta = section.querySelector<HTMLElement>('.meta');
  const sources = section.querySelector<HTMLElement>('.sources');
  const attached = section.querySelector<HTMLElement>('.attached');
  if (attached) {
    renderAttached(attached, turn);
  }
  if (markdown && renderedTurns.get(turn.id)?.answer !== turn.answer) {
    markdown.innerHTML = renderMarkdown(turn.answer);
  }
  if (meta) {
    meta.textContent = metaText(turn);
  }
  if (sources) {
    renderSources(sources, turn);
  }
  renderedTurns.set(turn.id, turn);
}

function render(): void {
  renderScheduled = false;
  if (!state) {
    return;
  }
  const busy = isBusy(state);
  stop.disabled = !busy;
  send.disabled = busy;
  empty.hidden = state.turns.length > 0;
  errorLine.hidden = !state.error;
  errorLine.textContent = state.error?.message ?? '';
  const atBottom = conversation.scrollHeight - conversation.scrollTop - conversation.clientHeight < 40;
  const shown = new Set<number>();
  for (const turn of state.turns) {
    shown.add(turn.id);
    let section = turnElements.get(turn.id);
    if (!section) {
      section = createTurn(turn);
      conversation.append(section);
      turnElements.set(turn.id, section);
    }
    if (renderedTurns.get(turn.id) !== turn) {
      updateTurn(section, turn);
    }
  }
  for (const [id, section] of turnElements) {
    if (!shown.has(id)) {
      section.remove();
      turnElements.delete(id);
      renderedTurns.delete(id);
    }
  }
  if (atBottom) {
    conversation.scrollTop = conversation.scrollHeight;
  }
  saveDraft(); // keeps the conversation too, for a window reload
}

function scheduleRender(): void {
  if (!renderScheduled) {
    renderScheduled = true;
    requestAnimationFrame(render);
  }
}

function apply(action: PanelAction): void {
  if (action.type === 'restore') {
    state = action.state;
  } else if (state) {
    state = reduce(state, action);
  } else {
    return; // the restore that follows holds this action too
  }
  if (action.type === 'failed' && state.error?.question && !input.value.trim()) {
    input.value = state.error.question;
    saveDraft();
  }
  scheduleRender();
}

function submit(): void {
  const text = input.value;
  if (!text.trim() || !state || isBusy(state)) {
    return;
  }
  post({ type: 'send', text });
  input.value = '';
  saveDraft();
}

window.addEventListener('message', (event: MessageEvent<PanelAction>) => { apply(event.data); });

form.addEventListener('submit', (event) => {
  event.preventDefault();
  submit();
});

input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submit();
  }
});

input.addEventListener('input', saveDraft);

document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && state && isBusy(state)) {
    event.preventDefault();
    post({ type: 'stop' });
  }
});

stop.addEventListener('click', () => { post({ type: 'stop' }); });
newChat.addEventListener('click', () => {
  post({ type: 'newChat' });
  input.focus();
});

conversation.addEventListener('click', (event) => {
  const target = event.target instanceof Element ? event.target.closest<HTMLElement>('[data-action], .source-link, .attached-link') : null;
  if (!target) {
    return;
  }
  event.preventDefault();
  const { path } = target.dataset;
  if (path !== undefined) {
    post({ type: 'openSource', path });
    return;
  }
  const code = target.closest('.code-block')?.querySelector('pre code')?.textContent ?? '';
  const action = target.dataset.action;
  if (action === 'copy' || action === 'insert') {
    post({ type: action, code });
  }
});

const saved = vscode.getState() as Partial<SavedWebviewState> | undefined;
input.value = saved?.draft ?? '';
input.focus();
post({ type: 'ready' });
