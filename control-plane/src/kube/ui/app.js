// The Skiff console: one page kept up to date by Kubernetes API watches, asked with the
// bearer token the user signed in with. Everything shown is built with textContent (never
// HTML from data), and the token lives in sessionStorage only (gone with the tab).
'use strict';

const TOKEN_KEY = 'skiff-console-token';
const PAGES = ['overview', 'pods', 'deployments', 'events', 'network'];
const MAX_EVENTS = 200;
const MAX_LOG_CHARS = 200000;

// ---- the DOM, built from data without ever parsing it as HTML ----

function h(tag, attrs, ...children) {
  const svg = ['svg', 'rect', 'line', 'text', 'circle', 'g', 'title'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const $ = (id) => document.getElementById(id);

// ---- the credential ----

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  stopAll();
  $('page').hidden = true;
  $('page').replaceChildren();
  $('nav').hidden = true;
  $('sign-out').hidden = true;
  $('who').textContent = '';
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = message || '';
}

class Unauthorized extends Error {}

// A request to the API with the token; a 401 signs the user out.
async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: 'Bearer ' + token(), Accept: 'application/json' }, options.headers || {});
  const res = await fetch(path, Object.assign({}, options, { headers, cache: 'no-store', credentials: 'omit' }));
  if (res.status === 401) {
    signOut('The token was refused: sign in again.');
    throw new Unauthorized('unauthorized');
  }
  return res;
}

// The message of a failed answer (a metav1.Status), in the server's words.
async function failure(res) {
  try {
    const status = await res.json();
    if (status && status.message) return status.message;
  } catch (_) { /* not JSON */ }
  return res.status + ' ' + res.statusText;
}

// ---- live state: one watch per kind, reconnected when it ends ----

const stores = {};
let controllers = [];
let timers = [];

function store(name) {
  if (!stores[name]) stores[name] = { items: new Map(), error: null, synced: false };
  return stores[name];
}

function key(o) { return (o.metadata.namespace || '') + '/' + o.metadata.name; }

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

async function watch(name, path) {
  const s = store(name);
  const abort = new AbortController();
  controllers.push(abort);
  while (!abort.signal.aborted) {
    try {
      const res = await api(path + '?watch=1&allowWatchBookmarks=false', { signal: abort.signal });
      if (!res.ok) {
        s.error = await failure(res);
        render();
        await sleep(5000);
        continue;
      }
      // The watch starts with every current object: what was known before is replaced.
      const fresh = new Map();
      s.items = fresh;
      s.error = null;
      s.synced = true;
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line.trim()) apply(s, JSON.parse(line));
        }
        render();
      }
    } catch (e) {
      if (e instanceof Unauthorized || abort.signal.aborted) return;
      s.error = String(e.message || e);
      render();
    }
    await sleep(1000);
  }
}

function apply(s, event) {
  if (event.type === 'ERROR') {
    s.error = (event.object && event.object.message) || 'watch failed';
    return;
  }
  if (!event.object || !event.object.metadata) return;
  if (event.type === 'DELETED') s.items.delete(key(event.object));
  else if (event.type === 'ADDED' || event.type === 'MODIFIED') s.items.set(key(event.object), event.object);
}

// Things with no watch (the Raft group, usage figures) are polled.
function poll(name, path, every) {
  const s = store(name);
  const abort = new AbortController();
  controllers.push(abort);
  const once = async () => {
    try {
      const res = await api(path, { signal: abort.signal });
      if (res.ok) { s.data = await res.json(); s.error = null; } else { s.error = await failure(res); }
    } catch (e) {
      if (e instanceof Unauthorized || abort.signal.aborted) return;
      s.error = String(e.message || e);
    }
    render();
  };
  once();
  timers.push(setInterval(once, every));
}

function stopAll() {
  for (const c of controllers) c.abort();
  for (const t of timers) clearInterval(t);
  controllers = [];
  timers = [];
  stopLog();
  for (const k of Object.keys(stores)) delete stores[k];
}

function startAll() {
  watch('nodes', '/api/v1/nodes');
  watch('pods', '/api/v1/pods');
  watch('deployments', '/apis/apps/v1/deployments');
  watch('events', '/api/v1/events');
  poll('cluster', '/ui/api/cluster', 2000);
  poll('nodeMetrics', '/apis/metrics.k8s.io/v1beta1/nodes', 10000);
}

// ---- rendering (batched: many watch events make one render) ----

let renderQueued = false;
function render() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => { renderQueued = false; draw(); }, 30);
}

function page() {
  const m = /^#\/([a-z]+)/.exec(location.hash);
  return m && PAGES.includes(m[1]) ? m[1] : 'overview';
}

function sorted(name) {
  return [...store(name).items.values()].sort((a, b) => key(a).localeCompare(key(b)));
}

function storeError(name) {
  const e = store(name).error;
  return e ? h('p', { class: 'error' }, name + ': ' + e) : null;
}

function ready(node) {
  const c = ((node.status || {}).conditions || []).find((c) => c.type === 'Ready');
  return c ? c.status : 'Unknown';
}

function internalIP(node) {
  const a = ((node.status || {}).addresses || []).find((a) => a.type === 'InternalIP');
  return a ? a.address : '';
}

// A memory quantity in Mi, as `kubectl top` prints it; anything unparsable as it came.
const UNITS = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1048576, Gi: 1073741824, Ti: 1099511627776 };
function mebibytes(quantity) {
  const m = /^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(quantity || '');
  if (!m) return quantity;
  return Math.round(Number(m[1]) * UNITS[m[2] || ''] / 1048576) + 'Mi';
}
function podCIDR(node) { return (node.spec || {}).podCIDR || ''; }

function restarts(pod) {
  return ((pod.status || {}).containerStatuses || []).reduce((n, c) => n + (c.restartCount || 0), 0);
}

// kubectl's STATUS column: a waiting or terminated reason over the phase.
function podStatus(pod) {
  if (pod.metadata.deletionTimestamp) return 'Terminating';
  const status = pod.status || {};
  for (const c of status.containerStatuses || []) {
    const st = c.state || {};
    if (st.waiting && st.waiting.reason) return st.waiting.reason;
    if (st.terminated && st.terminated.reason) return st.terminated.reason;
  }
  return status.phase || 'Pending';
}

function readyCount(pod) {
  const cs = (pod.status || {}).containerStatuses || [];
  const total = ((pod.spec || {}).containers || []).length;
  return cs.filter((c) => c.ready).length + '/' + total;
}

function statusClass(text) {
  if (['Running', 'Succeeded', 'True', 'Completed', 'Normal'].includes(text)) return 'ok';
  if (['Pending', 'ContainerCreating', 'Terminating', 'Unknown'].includes(text)) return 'warn';
  return 'bad';
}

function age(ts) {
  if (!ts) return '';
  const s = Math.max(0, (Date.now() - Date.parse(ts)) / 1000);
  if (s < 120) return Math.floor(s) + 's';
  if (s < 7200) return Math.floor(s / 60) + 'm';
  if (s < 172800) return Math.floor(s / 3600) + 'h';
  return Math.floor(s / 86400) + 'd';
}

function table(headers, rows) {
  return h('table', {}, h('thead', {}, h('tr', {}, headers.map((t) => h('th', {}, t)))), h('tbody', {}, rows));
}

function draw() {
  if (!token()) return;
  const current = page();
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === current);
  const body = { overview, pods, deployments, events, network }[current]();
  // Keep what the user is typing (a replica count) across live redraws.
  const focused = document.activeElement && document.activeElement.id;
  const value = focused ? document.activeElement.value : undefined;
  // A section with nothing to say is null: replaceChildren would print it as text.
  $('page').replaceChildren(...body.filter((part) => part));
  if (focused && $(focused)) { $(focused).value = value; $(focused).focus(); }
}

function overview() {
  const cluster = store('cluster');
  const members = cluster.data ? cluster.data.members : [];
  const memberRows = members.map((m) => h('tr', {},
    h('td', { class: m.leader ? 'leader' : '' }, m.id + (m.leader ? ' ★' : '')),
    h('td', {}, m.address),
    h('td', { class: m.healthy ? '' : 'bad' }, m.state),
    h('td', {}, m.term),
    h('td', {}, m.applied),
    h('td', {}, m.lastLogIndex),
    h('td', {}, m.lag === null ? '—' : m.lag),
    h('td', { class: 'msg muted' }, m.error)));
  const usage = new Map(((store('nodeMetrics').data || {}).items || []).map((m) => [m.metadata.name, m.usage]));
  const nodeRows = sorted('nodes').map((n) => {
    const alloc = (n.status || {}).allocatable || {};
    const u = usage.get(n.metadata.name) || {};
    return h('tr', {},
      h('td', {}, n.metadata.name),
      h('td', { class: statusClass(ready(n)) }, ready(n) === 'True' ? 'Ready' : 'NotReady'),
      h('td', {}, (n.spec || {}).unschedulable ? 'cordoned' : ''),
      h('td', {}, internalIP(n)),
      h('td', {}, podCIDR(n)),
      h('td', {}, (u.cpu || '—') + ' / ' + (alloc.cpu || '?')),
      h('td', {}, (mebibytes(u.memory) || '—') + ' / ' + (mebibytes(alloc.memory) || '?')),
      h('td', {}, cordonButton(n)));
  });
  const phases = {};
  for (const p of store('pods').items.values()) {
    const phase = (p.status || {}).phase || 'Pending';
    phases[phase] = (phases[phase] || 0) + 1;
  }
  const phaseCards = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'].map((ph) =>
    h('div', { class: 'phase' }, h('b', { class: phases[ph] ? statusClass(ph) : 'muted' }, phases[ph] || 0), ph));
  const c = cluster.data;
  return [
    h('h1', {}, 'Overview'),
    h('div', { class: 'card' },
      h('h2', {}, 'Control plane (Raft)'),
      c ? h('p', { class: 'status-line' }, 'leader ', h('span', { class: 'leader' }, c.leader === null ? 'none' : 'member ' + c.leader),
        ' · term ' + c.term + ' · applied index ' + c.applied + ' (as member ' + c.answeredBy + ' sees it)') : null,
      storeError('cluster'),
      table(['member', 'address', 'state', 'term', 'applied', 'last log', 'lag', ''], memberRows)),
    h('div', { class: 'card' },
      h('h2', {}, 'Nodes'),
      storeError('nodes'), storeError('nodeMetrics'),
      table(['name', 'ready', '', 'internal IP', 'pod CIDR', 'CPU used / allocatable', 'memory used / allocatable', ''], nodeRows)),
    h('div', { class: 'card' }, h('h2', {}, 'Pods by phase'), storeError('pods'), h('div', { class: 'phases' }, phaseCards)),
  ];
}

// ---- actions: through the API, with the user's token (so its authorization) ----

let actionMessage = '';

async function act(description, run) {
  try {
    const res = await run();
    actionMessage = res.ok ? description + ': done' : description + ': ' + await failure(res);
  } catch (e) {
    if (e instanceof Unauthorized) return;
    actionMessage = description + ': ' + (e.message || e);
  }
  render();
}

// A merge patch of `path`; where the server has no PATCH yet, the object read, changed and
// put back (its resourceVersion makes that refuse a concurrent change).
async function change(path, patch, mutate) {
  const res = await api(path, { method: 'PATCH', headers: { 'Content-Type': 'application/merge-patch+json' }, body: JSON.stringify(patch) });
  if (res.status !== 405 && res.status !== 415) return res;
  const got = await api(path);
  if (!got.ok) return got;
  const object = await got.json();
  mutate(object);
  return api(path, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(object) });
}

function cordonButton(node) {
  const cordoned = !!(node.spec || {}).unschedulable;
  const name = node.metadata.name;
  return h('button', { class: 'action', type: 'button', onclick: () => act((cordoned ? 'uncordon ' : 'cordon ') + name,
    () => change('/api/v1/nodes/' + encodeURIComponent(name), { spec: { unschedulable: cordoned ? null : true } },
      (o) => { o.spec = o.spec || {}; if (cordoned) delete o.spec.unschedulable; else o.spec.unschedulable = true; })) },
  cordoned ? 'uncordon' : 'cordon');
}

const confirming = new Set();

function deleteButton(pod) {
  const k = key(pod);
  const path = '/api/v1/namespaces/' + encodeURIComponent(pod.metadata.namespace) + '/pods/' + encodeURIComponent(pod.metadata.name);
  const asking = confirming.has(k);
  return h('button', { class: 'action danger', type: 'button', onclick: (e) => {
    e.stopPropagation();
    if (!asking) { confirming.add(k); render(); setTimeout(() => { confirming.delete(k); render(); }, 4000); return; }
    confirming.delete(k);
    act('delete pod ' + k, () => api(path, { method: 'DELETE' }));
  } }, asking ? 'really delete?' : 'delete');
}

// ---- pods and the log tail ----

let logFor = null;
let logAbort = null;
let logText = '';
let logError = '';

function stopLog() { if (logAbort) logAbort.abort(); logAbort = null; logFor = null; logText = ''; logError = ''; }

async function followLog(pod) {
  stopLog();
  logFor = key(pod);
  const abort = new AbortController();
  logAbort = abort;
  render();
  const path = '/api/v1/namespaces/' + encodeURIComponent(pod.metadata.namespace) + '/pods/' + encodeURIComponent(pod.metadata.name) + '/log?follow=true&tailLines=200';
  try {
    const res = await api(path, { signal: abort.signal, headers: { Accept: 'text/plain' } });
    if (!res.ok) { logError = await failure(res); render(); return; }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      logText = (logText + decoder.decode(value, { stream: true })).slice(-MAX_LOG_CHARS);
      render();
    }
  } catch (e) {
    if (!abort.signal.aborted && !(e instanceof Unauthorized)) { logError = String(e.message || e); render(); }
  }
}

function pods() {
  const rows = sorted('pods').map((p) => h('tr', { class: logFor === key(p) ? 'selected' : '', 'data-pod': key(p) },
    h('td', {}, p.metadata.namespace),
    h('td', {}, p.metadata.name),
    h('td', {}, readyCount(p)),
    h('td', { class: statusClass(podStatus(p)) }, podStatus(p)),
    h('td', {}, restarts(p)),
    h('td', {}, (p.spec || {}).nodeName || ''),
    h('td', {}, (p.status || {}).podIP || ''),
    h('td', {}, age(p.metadata.creationTimestamp)),
    h('td', {}, h('button', { class: 'action', type: 'button', onclick: () => followLog(p) }, 'logs'), ' ', deleteButton(p))));
  const log = logFor ? h('div', { class: 'card' },
    h('h2', {}, 'Log of ' + logFor + ' (following)'),
    logError ? h('p', { class: 'error' }, logError) : null,
    h('pre', { class: 'log' }, logText || '(no output yet)')) : null;
  return [
    h('h1', {}, 'Pods'),
    actionMessage ? h('p', { class: 'status-line' }, actionMessage) : null,
    h('div', { class: 'card' }, storeError('pods'),
      table(['namespace', 'name', 'ready', 'status', 'restarts', 'node', 'IP', 'age', ''], rows)),
    log,
  ];
}

function deployments() {
  const rows = sorted('deployments').map((d) => {
    const want = (d.spec || {}).replicas ?? 1;
    const st = d.status || {};
    const id = 'replicas-' + d.metadata.namespace + '-' + d.metadata.name;
    const path = '/apis/apps/v1/namespaces/' + encodeURIComponent(d.metadata.namespace) + '/deployments/' + encodeURIComponent(d.metadata.name);
    const scale = () => {
      const n = parseInt($(id).value, 10);
      if (!(n >= 0)) { actionMessage = 'replicas must be a whole number, 0 or more'; render(); return; }
      act('scale ' + key(d) + ' to ' + n, () => change(path, { spec: { replicas: n } }, (o) => { o.spec.replicas = n; }));
    };
    return h('tr', {},
      h('td', {}, d.metadata.namespace),
      h('td', {}, d.metadata.name),
      h('td', {}, (st.readyReplicas || 0) + '/' + want),
      h('td', {}, h('progress', { max: Math.max(want, 1), value: Math.min(st.readyReplicas || 0, want) })),
      h('td', {}, st.updatedReplicas || 0),
      h('td', {}, st.availableReplicas || 0),
      h('td', {}, age(d.metadata.creationTimestamp)),
      h('td', {}, h('input', { id, class: 'replicas', type: 'number', min: 0, value: want }), ' ',
        h('button', { class: 'action', type: 'button', onclick: scale }, 'scale')));
  });
  return [
    h('h1', {}, 'Deployments'),
    actionMessage ? h('p', { class: 'status-line' }, actionMessage) : null,
    h('div', { class: 'card' }, storeError('deployments'),
      table(['namespace', 'name', 'ready', 'rollout', 'up-to-date', 'available', 'age', 'replicas'], rows)),
  ];
}

function events() {
  const list = [...store('events').items.values()];
  const when = (e) => e.lastTimestamp || e.eventTime || e.firstTimestamp || e.metadata.creationTimestamp || '';
  list.sort((a, b) => when(b).localeCompare(when(a)));
  const rows = list.slice(0, MAX_EVENTS).map((e) => h('tr', {},
    h('td', {}, age(when(e))),
    h('td', { class: e.type === 'Warning' ? 'warn' : '' }, e.type || ''),
    h('td', {}, e.reason || ''),
    h('td', {}, ((e.involvedObject || {}).kind || '').toLowerCase() + '/' + ((e.involvedObject || {}).name || '')),
    h('td', { class: 'msg' }, e.message || ''),
    h('td', {}, e.count || 1)));
  return [
    h('h1', {}, 'Events'),
    h('div', { class: 'card' }, storeError('events'),
      table(['last seen', 'type', 'reason', 'object', 'message', 'count'], rows)),
  ];
}

// The flat pod network: each node owns a pod CIDR, reached through the node's address
// (host-gw style), drawn as nodes on one underlay with their pods.
function network() {
  const nodes = sorted('nodes');
  const byNode = new Map(nodes.map((n) => [n.metadata.name, []]));
  for (const p of sorted('pods')) {
    const list = byNode.get((p.spec || {}).nodeName);
    if (list && (p.status || {}).podIP) list.push(p);
  }
  const W = 240, GAP = 24, TOP = 70, ROW = 16, MAXPODS = 8;
  const width = Math.max(nodes.length, 1) * (W + GAP) + GAP;
  const height = TOP + 70 + MAXPODS * ROW + 40;
  const boxes = nodes.map((n, i) => {
    const x = GAP + i * (W + GAP);
    const list = byNode.get(n.metadata.name);
    const shown = list.slice(0, MAXPODS);
    return h('g', {},
      h('line', { x1: x + W / 2, y1: 36, x2: x + W / 2, y2: TOP }),
      h('rect', { class: 'node', x, y: TOP, width: W, height: height - TOP - 10, rx: 8 }),
      h('text', { x: x + 10, y: TOP + 20 }, n.metadata.name + '  ' + internalIP(n)),
      h('text', { class: 'cidr', x: x + 10, y: TOP + 40 }, podCIDR(n) || '(no pod CIDR yet)'),
      shown.map((p, j) => h('g', {},
        h('circle', { cx: x + 16, cy: TOP + 62 + j * ROW, r: 4 }),
        h('text', { x: x + 26, y: TOP + 66 + j * ROW }, p.status.podIP + '  ' + p.metadata.name))),
      list.length > MAXPODS ? h('text', { x: x + 26, y: TOP + 66 + MAXPODS * ROW }, '… ' + (list.length - MAXPODS) + ' more') : null);
  });
  const svg = h('svg', { class: 'network', viewBox: '0 0 ' + width + ' ' + height, role: 'img', 'aria-label': 'pod network' },
    h('title', {}, 'the pod network'),
    h('rect', { class: 'bus', x: GAP / 2, y: 26, width: width - GAP, height: 10, rx: 5 }),
    h('text', { x: GAP, y: 18 }, 'underlay: every node routes each other node\'s pod CIDR to that node'),
    boxes);
  const routes = [];
  for (const from of nodes) {
    for (const to of nodes) {
      if (from === to || !podCIDR(to)) continue;
      routes.push(h('tr', {}, h('td', {}, from.metadata.name), h('td', {}, podCIDR(to)), h('td', {}, 'via ' + (internalIP(to) || '?')), h('td', {}, to.metadata.name)));
    }
  }
  return [
    h('h1', {}, 'Pod network'),
    h('div', { class: 'card' }, storeError('nodes'), svg),
    h('div', { class: 'card' }, h('h2', {}, 'Routes'), table(['on node', 'destination', 'gateway', 'owner'], routes)),
  ];
}

// ---- signing in ----

async function signIn(candidate) {
  sessionStorage.setItem(TOKEN_KEY, candidate);
  let res;
  try {
    // Authentication only: any valid token may read the version.
    res = await api('/version');
  } catch (e) {
    if (!(e instanceof Unauthorized)) signOut('Cannot reach the API: ' + (e.message || e));
    return;
  }
  if (!res.ok) { signOut('Sign-in failed: ' + await failure(res)); return; }
  const version = await res.json();
  $('sign-in').hidden = true;
  $('nav').hidden = false;
  $('sign-out').hidden = false;
  $('page').hidden = false;
  $('who').textContent = version.gitVersion || '';
  if (!/^#\//.test(location.hash)) history.replaceState(null, '', '#/overview');
  startAll();
  render();
}

function start() {
  // `skiff dashboard --url` puts the token in the fragment, which browsers never send: take
  // it out of the address bar and history at once.
  const m = /^#token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + '#/overview');
  }
  $('sign-in-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('token').value.trim();
    $('token').value = '';
    if (t) signIn(t);
  });
  $('sign-out').addEventListener('click', () => signOut(''));
  window.addEventListener('hashchange', () => { actionMessage = ''; render(); });
  const t = token();
  if (t) signIn(t); else signOut('');
}

start();
