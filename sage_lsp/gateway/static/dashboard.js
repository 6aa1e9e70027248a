// The dashboard of `sage serve`: polls /api/state with the key (from #key=KEY or asked for
// once, kept in sessionStorage) and draws the models, services, recent requests, a chart and
// a service's log tail. No build step, no library; text goes into the page as text only.
'use strict';

const KEY_ITEM = 'sage-serve-key';
const POLL_MS = 1000;
const COLORS = ['#2e86c1', '#e67e22', '#27ae60', '#8e44ad', '#c0392b', '#16a085', '#d4ac0d'];

const $ = (id) => document.getElementById(id);
let timer = null;
let logName = null;
let lastState = null;

/** An element with attributes (`text`: its text, `on*`: a listener) and children. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') node.textContent = String(value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  node.append(...children);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

/** Thrown when the gateway refuses the key. */
class KeyRefused extends Error {}

/** Call the API with the key; an error answer throws its message. */
async function api(path, method = 'GET') {
  const key = sessionStorage.getItem(KEY_ITEM);
  const answer = await fetch(path, { method, headers: { Authorization: `Bearer ${key}` } });
  let body = null;
  try {
    body = await answer.json();
  } catch {
    body = null;
  }
  if (answer.status === 401) throw new KeyRefused(body?.error?.message ?? 'HTTP 401');
  if (!answer.ok) throw new Error(body?.error?.message ?? `HTTP ${answer.status}`);
  return body;
}

function askForKey(message) {
  clearTimeout(timer);
  timer = null;
  sessionStorage.removeItem(KEY_ITEM);
  $('main').hidden = true;
  $('change-key').hidden = true;
  $('status').textContent = '';
  $('key-form').hidden = false;
  $('key-error').textContent = message;
  $('key-input').value = '';
  $('key-input').focus();
}

function useKey(key) {
  sessionStorage.setItem(KEY_ITEM, key);
  $('key-form').hidden = true;
  $('key-error').textContent = '';
  poll();
}

function notice(message) {
  $('notice').hidden = !message;
  $('notice').textContent = message || '';
}

/** Run an API call for a button; a refused key asks again, another error shows. */
async function act(call) {
  try {
    const result = await call();
    notice('');
    return result;
  } catch (error) {
    if (error instanceof KeyRefused) {
      askForKey(`The gateway refused this key: ${error.message}`);
    } else {
      notice(error.message);
    }
    return null;
  }
}

function seconds(value) {
  if (value === null || value === undefined) return '';
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  return `${value.toFixed(value < 10 ? 2 : 1)} s`;
}

function uptime(value) {
  const total = Math.floor(value);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h ? `${h} h ${m} min` : m ? `${m} min ${s} s` : `${s} s`;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function colorOf(name, names) {
  return COLORS[names.indexOf(name) % COLORS.length];
}

function startModel(name) {
  act(async () => {
    const row = document.querySelector(`#models tr[data-model="${CSS.escape(name)}"]`);
    if (row) row.querySelector('.state').textContent = 'starting';
    await api(`/api/models/${encodeURIComponent(name)}/start`, 'POST');
  }).then(refresh);
}

function stopModel(name) {
  act(() => api(`/api/models/${encodeURIComponent(name)}/stop`, 'POST')).then(refresh);
}

function drawModels(state) {
  fill($('models').tBodies[0], state.models.map((model) => {
    const busy = model.state === 'starting' || model.state === 'ready';
    return el('tr', { 'data-model': model.name },
      el('td', { text: model.name + (model.finetuned ? '' : ' (not finetuned)') }),
      el('td', {},
        el('span', { class: `state state-${model.state}`, text: model.state }),
        model.failure ? el('div', { class: 'failure', text: model.failure }) : ''),
      el('td', { class: 'num port', text: model.port ?? '' }),
      el('td', {},
        el('button', { type: 'button', class: 'start', disabled: busy, text: 'Start',
          onclick: () => startModel(model.name) }),
        el('button', { type: 'button', class: 'stop', disabled: model.state === 'stopped',
          text: 'Stop', onclick: () => stopModel(model.name) })));
  }));
}

function drawServices(state) {
  $('no-services').hidden = state.services.length > 0;
  fill($('services').tBodies[0], state.services.map((service) => {
    const holders = service.holders.map((h) => (h.gateway ? 'this gateway' : `pid ${h.pid}`));
    return el('tr', { 'data-service': service.name },
      el('td', {},
        service.name,
        service.adapters.length
          ? el('div', { class: 'adapters hint', text: `adapters: ${service.adapters.join(', ')}` })
          : ''),
      el('td', { class: 'num port', text: service.port }),
      el('td', { class: `state state-${service.state}`, text: service.state }),
      el('td', { class: 'holders', text: holders.join(', ') || 'none' }),
      el('td', { class: 'version', text: (service.version ?? '').slice(0, 12) }),
      el('td', { class: 'num uptime', text: uptime(service.uptime) }),
      el('td', {}, el('button', { type: 'button', class: 'log', text: 'Log',
        onclick: () => openLog(service.name) })));
  }));
}

function drawRequests(state) {
  fill($('requests').tBodies[0], state.requests.map((r) => el('tr', { 'data-model': r.model },
    el('td', { text: new Date(r.at * 1000).toLocaleTimeString() }),
    el('td', { class: 'model', text: r.model }),
    el('td', { class: 'num status', text: r.status }),
    el('td', { class: 'num ttft', text: seconds(r.ttft) }),
    el('td', { class: 'num tokens', text: r.tokens }),
    el('td', { class: 'num rate', text: r.tokens_per_second ? r.tokens_per_second.toFixed(1) : '' }),
    el('td', { class: 'num duration', text: seconds(r.duration) }))));
}

/** One line per model over the last minutes, hand-drawn in SVG. */
function drawChart(state) {
  const { step, points, models } = state.series;
  const metric = $('metric').value;
  const names = Object.keys(models);
  const chart = $('chart');
  const width = Math.max(320, Math.round(chart.clientWidth || 640));
  const height = 180, left = 40, bottom = 20, top = 10;
  chart.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const max = Math.max(1, ...names.flatMap((name) => models[name][metric]));
  const x = (i) => left + (i * (width - left - 5)) / (points - 1);
  const y = (v) => height - bottom - (v * (height - bottom - top)) / max;
  const nodes = [
    svg('line', { class: 'axis', x1: left, y1: height - bottom, x2: width, y2: height - bottom }),
    svg('line', { class: 'axis', x1: left, y1: top, x2: left, y2: height - bottom }),
  ];
  const label = (text, attrs) => {
    const node = svg('text', attrs);
    node.textContent = text;
    return node;
  };
  nodes.push(label(max.toFixed(max < 10 ? 1 : 0), { x: 2, y: top + 8 }));
  nodes.push(label('0', { x: 2, y: height - bottom }));
  nodes.push(label(`-${Math.round((points * step) / 60)} min`, { x: left, y: height - 4 }));
  nodes.push(label('now', { x: width - 28, y: height - 4 }));
  for (const name of names) {
    const values = models[name][metric];
    const line = svg('polyline', {
      'data-model': name,
      stroke: colorOf(name, names),
      points: values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' '),
    });
    nodes.push(line);
  }
  chart.replaceChildren(...nodes);
  $('legend').replaceChildren(...names.map((name) => {
    const swatch = el('i');
    swatch.style.background = colorOf(name, names);
    return el('span', {}, swatch, name);
  }));
}

function draw(state) {
  lastState = state;
  $('main').hidden = false;
  $('change-key').hidden = false;
  $('status').textContent = `updated ${new Date(state.now * 1000).toLocaleTimeString()}`;
  drawModels(state);
  drawServices(state);
  drawRequests(state);
  drawChart(state);
}

async function openLog(name) {
  logName = name;
  $('log-section').hidden = false;
  $('log-name').textContent = name;
  await refreshLog();
}

/** Read the open log's tail again; once its service is gone, the last lines read stay. */
async function refreshLog() {
  if (!logName) return;
  const name = logName;
  let log;
  try {
    log = await api(`/api/logs/${encodeURIComponent(name)}?lines=200`);
  } catch (error) {
    if (error instanceof KeyRefused) {
      askForKey(`The gateway refused this key: ${error.message}`);
    } else if (logName === name) {
      logName = null;
      $('log-path').textContent = `${error.message} (the last lines read are shown)`;
    }
    return;
  }
  if (logName === name) {
    const pre = $('log');
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    $('log-path').textContent = log.path;
    pre.textContent = log.lines.join('\n');
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }
}

async function refresh() {
  if (!sessionStorage.getItem(KEY_ITEM)) return false;
  try {
    draw(await api('/api/state'));
  } catch (error) {
    if (error instanceof KeyRefused) {
      askForKey(`The gateway refused this key: ${error.message}`);
      return false;
    }
    $('status').textContent = `the gateway did not answer: ${error.message}`;
  }
  await refreshLog();
  return true;
}

async function poll() {
  clearTimeout(timer);
  if (await refresh()) timer = setTimeout(poll, POLL_MS);
}

function main() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.has('key')) {
    sessionStorage.setItem(KEY_ITEM, fragment.get('key'));
    history.replaceState(null, '', location.pathname + location.search);
  }
  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const key = $('key-input').value.trim();
    if (key) useKey(key);
  });
  $('change-key').addEventListener('click', () => askForKey(''));
  $('log-close').addEventListener('click', () => {
    logName = null;
    $('log-section').hidden = true;
  });
  $('metric').addEventListener('change', () => lastState && drawChart(lastState));
  if (sessionStorage.getItem(KEY_ITEM)) poll();
  else askForKey('');
}

main();
