/**
 * The dashboard served at `GET /`: plain HTML, CSS and JS, no build. It shows every cell and
 * agent with its live state (colour and age), restarts, pending approvals with approve/deny
 * buttons, restart/stop/start/reset buttons per agent (the API token is asked once and kept for
 * the browser session, and every button needs it), the last events of each agent (seeded at load
 * from `/api/recent-events`, then updated from the `/api/events` stream, and a slow
 * `/api/status` poll), a restart timeline (each agent's deaths and revivals over the last 6
 * hours, from the same events), an agent's log tail (`/api/agents/:agent/log`, with the token),
 * the cluster's hosts with their lease age and each agent's owner host and epoch (`cluster` and
 * `owner` of `/api/status`, shown when `[cluster]` is set), and the model providers' health matrix (`providers` of the same `/api/status`: state in the
 * agents' colours, since when, the evidence), shown when `[providers.<name>]` are configured.
 */
import { CELL_EVENT_KINDS } from '@pit/cell-spec';

/**
 * The kinds shown among an agent's last events: every kind of cell-spec's list but `heartbeat`
 * (routine; the heartbeat column shows it). Unknown kinds are shown too (see the stream).
 */
const SHOWN_KINDS = CELL_EVENT_KINDS.filter((kind) => kind !== 'heartbeat');

/** The whole page. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>The Pit</title>
<style>
  :root { --ok: #1f9d55; --warn: #d69e2e; --bad: #e53e3e; --idle: #718096; --bg: #0f1115; --fg: #e2e8f0; --card: #1a1d24; --line: #2d3340; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
  header { display: flex; gap: 1rem; align-items: center; padding: .75rem 1.25rem; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
  header h1 { font-size: 1.1rem; margin: 0; }
  #summary span { margin-right: .75rem; }
  #token-form { margin-left: auto; display: flex; gap: .5rem; align-items: center; }
  input, button { font: inherit; padding: .3rem .6rem; border-radius: 4px; border: 1px solid var(--line); background: var(--card); color: var(--fg); }
  button { cursor: pointer; }
  button.approve { border-color: var(--ok); }
  button.deny { border-color: var(--bad); }
  main { padding: 1rem 1.25rem; display: grid; gap: 1rem; }
  section.cell { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .75rem 1rem; }
  section.cell h2 { font-size: 1rem; margin: 0 0 .5rem; }
  section.cell h2 small { color: var(--idle); font-weight: normal; }
  table { width: 100%; border-collapse: collapse; }
  th, td { text-align: left; padding: .35rem .5rem; border-top: 1px solid var(--line); vertical-align: top; }
  th { color: var(--idle); font-weight: 500; }
  .state { display: inline-block; min-width: 5.5rem; padding: .1rem .5rem; border-radius: 999px; color: #fff; text-align: center; font-weight: 600; }
  .state.healthy { background: var(--ok); } .state.degraded { background: var(--warn); } .state.dead { background: var(--bad); } .state.unknown, .state.starting, .state.stopped { background: var(--idle); }
  .events { font-family: ui-monospace, monospace; font-size: 12px; color: #a0aec0; white-space: pre-wrap; }
  #message { color: var(--warn); }
  #problems { color: var(--warn); white-space: pre-wrap; }
  section.panel { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .75rem 1rem; margin: 1rem 1.25rem 0; }
  section.panel h2 { font-size: 1rem; margin: 0 0 .5rem; }
  #timeline text { fill: var(--idle); font-size: 11px; }
  #timeline .death { fill: var(--bad); } #timeline .revival { fill: var(--ok); }
  #log-view { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap; max-height: 24rem; overflow: auto; margin: 0; }
</style>
</head>
<body>
<header>
  <h1>The Pit</h1>
  <div id="summary"></div>
  <span id="message" role="status"></span>
  <form id="token-form">
    <label for="token">API token</label>
    <input id="token" type="password" autocomplete="off" placeholder="for approvals">
    <button type="submit">Save</button>
  </form>
</header>
<section class="panel" id="timeline-box">
  <h2>Deaths <span style="color: var(--bad)">●</span> and revivals <span style="color: var(--ok)">▮</span>, last 6 hours</h2>
  <svg id="timeline" width="100%" height="40" role="img" aria-label="restart timeline"></svg>
</section>
<section class="panel" id="hosts-box" hidden>
  <h2>Cluster hosts <small id="hosts-note"></small></h2>
  <table><thead><tr><th>host</th><th>lease age</th><th>pid</th><th>agents it holds</th></tr></thead><tbody id="hosts"></tbody></table>
</section>
<section class="panel" id="providers-box" hidden>
  <h2>Model providers</h2>
  <table><thead><tr><th>provider</th><th>state</th><th>since</th><th>evidence</th></tr></thead><tbody id="providers"></tbody></table>
</section>
<main id="cells"><p>Loading…</p></main>
<section class="panel" id="log-box" hidden>
  <h2><span id="log-title"></span> <button id="log-close" type="button">close</button></h2>
  <pre id="log-view"></pre>
</section>
<div id="problems"></div>
<script>
(() => {
  const events = new Map();
  let status = { cells: [], agents: [], approvals: [], problems: [] };
  const tokenInput = document.getElementById('token');
  tokenInput.value = sessionStorage.getItem('pit-token') || '';
  document.getElementById('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    sessionStorage.setItem('pit-token', tokenInput.value.trim());
    say('token saved for this session');
  });
  const say = (text) => { document.getElementById('message').textContent = text; };
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === 'class') node.className = value; else if (key.startsWith('on')) node.addEventListener(key.slice(2), value); else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  };
  const age = (iso) => {
    if (!iso) return '';
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 90) return seconds + ' s';
    if (seconds < 5400) return Math.round(seconds / 60) + ' min';
    return Math.round(seconds / 3600) + ' h';
  };
  async function decide(id, decision) {
    const token = sessionStorage.getItem('pit-token') || tokenInput.value.trim();
    if (!token) { say('enter the API token first'); tokenInput.focus(); return; }
    sessionStorage.setItem('pit-token', token);
    const response = await fetch('/api/approvals/' + encodeURIComponent(id) + '/' + decision, {
      method: 'POST', headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' }, body: JSON.stringify({}),
    });
    const body = await response.json().catch(() => ({}));
    say(response.ok ? (decision === 'approve' ? 'approved ' : 'denied ') + id : 'refused: ' + (body.error || response.status));
    refresh();
  }
  async function control(agent, action) {
    const token = sessionStorage.getItem('pit-token') || tokenInput.value.trim();
    if (!token) { say('enter the API token first'); tokenInput.focus(); return; }
    sessionStorage.setItem('pit-token', token);
    const ref = (agent.cell || 'host') + '/' + agent.agent;
    const response = await fetch('/api/agents/' + encodeURIComponent(ref) + '/' + action, {
      method: 'POST', headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' }, body: JSON.stringify({}),
    });
    const body = await response.json().catch(() => ({}));
    say(response.ok ? body.message || action + ' ' + ref : 'refused: ' + (body.error || response.status));
    refresh();
  }
  const controls = (agent) => el('td', { class: 'controls' },
    ...(agent.health === 'stopped' ? ['start'] : ['restart', 'stop']).concat(['reset']).map((action) =>
      el('button', { 'data-control': action, onclick: () => control(agent, action) }, action)),
    ' ', el('button', { 'data-log': agent.agent, onclick: () => showLog(agent) }, 'log'));
  let shownLog;
  async function showLog(agent) {
    const token = sessionStorage.getItem('pit-token') || tokenInput.value.trim();
    if (!token) { say('enter the API token first'); tokenInput.focus(); return; }
    sessionStorage.setItem('pit-token', token);
    shownLog = agent;
    const ref = (agent.cell || 'host') + '/' + agent.agent;
    const response = await fetch('/api/agents/' + encodeURIComponent(ref) + '/log?lines=200', {
      headers: { authorization: 'Bearer ' + token }, cache: 'no-store',
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) { say('log refused: ' + (body.error || response.status)); return; }
    const box = document.getElementById('log-box');
    box.hidden = false;
    box.setAttribute('data-agent', agent.agent);
    document.getElementById('log-title').textContent = 'log of ' + body.agent + (body.truncated ? ' (last ' + body.lines.length + ' lines)' : '');
    const view = document.getElementById('log-view');
    const atEnd = view.scrollTop + view.clientHeight >= view.scrollHeight - 4;
    const stderr = body.stderr || [];
    view.textContent = body.lines.concat(stderr.length > 0 ? ['--- stderr ---'].concat(stderr) : []).join('\\n');
    if (atEnd) view.scrollTop = view.scrollHeight;
  }
  document.getElementById('log-close').addEventListener('click', () => {
    shownLog = undefined;
    document.getElementById('log-box').hidden = true;
  });
  const HOURS = 6;
  const SVG = 'http://www.w3.org/2000/svg';
  const svgEl = (tag, attrs, text) => {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const timeline = [];
  function renderTimeline() {
    const svg = document.getElementById('timeline');
    const width = svg.clientWidth || 800;
    const now = Date.now();
    const from = now - HOURS * 3600_000;
    while (timeline.length > 0 && Date.parse(timeline[0].ts) < from) timeline.shift();
    const left = 140;
    const agents = [...new Set(timeline.map((item) => (item.cell || '').slice(0, 8) + '/' + item.agent))].sort();
    const rowHeight = 18;
    svg.setAttribute('height', String(Math.max(1, agents.length) * rowHeight + 22));
    const nodes = [];
    const x = (ts) => left + ((Date.parse(ts) - from) / (now - from)) * (width - left - 10);
    for (let hour = 0; hour <= HOURS; hour += 1) {
      const at = left + (hour / HOURS) * (width - left - 10);
      nodes.push(svgEl('line', { x1: at, x2: at, y1: 0, y2: agents.length * rowHeight, stroke: '#2d3340' }));
      nodes.push(svgEl('text', { x: at - 12, y: agents.length * rowHeight + 14 }, hour === HOURS ? 'now' : '-' + (HOURS - hour) + ' h'));
    }
    agents.forEach((key, row) => {
      const y = row * rowHeight + rowHeight / 2;
      nodes.push(svgEl('text', { x: 0, y: y + 4 }, key));
      for (const item of timeline) {
        if ((item.cell || '').slice(0, 8) + '/' + item.agent !== key || Date.parse(item.ts) < from) continue;
        const title = svgEl('title', {}, new Date(item.ts).toLocaleString() + ' ' + item.event + (item.reason ? ': ' + item.reason : ''));
        const mark = item.event === 'agent_dead'
          ? svgEl('circle', { class: 'death', cx: x(item.ts), cy: y, r: 4, 'data-kind': 'death', 'data-agent': item.agent })
          : svgEl('rect', { class: 'revival', x: x(item.ts) - 2, y: y - 6, width: 4, height: 12, 'data-kind': 'revival', 'data-agent': item.agent });
        mark.append(title);
        nodes.push(mark);
      }
    });
    if (agents.length === 0) nodes.push(svgEl('text', { x: 0, y: 14 }, 'no deaths or revivals in the last ' + HOURS + ' hours'));
    svg.replaceChildren(...nodes);
  }
  function render() {
    const counts = { healthy: 0, degraded: 0, dead: 0, unknown: 0 };
    for (const agent of status.agents) counts[agent.health] = (counts[agent.health] || 0) + 1;
    const summary = document.getElementById('summary');
    summary.replaceChildren(...Object.entries(counts).map(([state, count]) => el('span', {}, el('span', { class: 'state ' + state }, state), ' ' + count)));
    const approvals = new Map(status.approvals.map((approval) => [approval.id, approval]));
    const groups = new Map();
    for (const agent of status.agents) {
      const key = agent.cell || 'outside cells';
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(agent);
    }
    const sections = [];
    for (const [cellId, agents] of groups) {
      const cell = status.cells.find((item) => item.uuid === cellId);
      const rows = agents.map((agent) => {
        const approval = agent.pending_approval ? approvals.get(agent.pending_approval) : undefined;
        const actions = approval
          ? el('td', {}, el('div', {}, (approval.reasons || []).join(' ')),
              el('button', { class: 'approve', 'data-approve': approval.id, onclick: () => decide(approval.id, 'approve') }, 'Approve ' + approval.proposed),
              ' ', el('button', { class: 'deny', 'data-deny': approval.id, onclick: () => decide(approval.id, 'deny') }, 'Deny'))
          : el('td', {}, agent.backoff_until ? 'backoff until ' + new Date(agent.backoff_until).toLocaleTimeString() : '');
        const last = (events.get((agent.cell || '') + '/' + agent.agent) || []).slice(-5).map((item) => new Date(item.ts).toLocaleTimeString() + ' ' + item.event + (item.action ? ' ' + item.action : '') + (item.reason ? ': ' + item.reason : '')).join('\\n');
        return el('tr', { 'data-agent': agent.agent, 'data-state': agent.health },
          el('td', {}, el('strong', {}, agent.agent)),
          el('td', {}, el('span', { class: 'state ' + agent.health }, agent.health), ' ', el('small', {}, age(agent.since))),
          el('td', {}, agent.heartbeat_age_s !== undefined ? agent.heartbeat_age_s + ' s' : '—'),
          el('td', {}, String(agent.restarts)),
          el('td', {}, agent.pid || '—', agent.owner ? el('small', { class: 'owner', title: 'owner host @ epoch' }, ' ' + agent.owner.host + '@' + agent.owner.epoch) : ''),
          actions,
          controls(agent),
          el('td', { class: 'events' }, last));
      });
      sections.push(el('section', { class: 'cell', 'data-cell': cellId },
        el('h2', {}, cell ? (cell.name || cell.mission) + ' ' : cellId + ' ', el('small', {}, cell ? cell.status + ' · ' + cellId : '')),
        el('table', {}, el('thead', {}, el('tr', {}, ...['agent', 'state', 'heartbeat', 'restarts', 'pid', 'approval / backoff', 'controls', 'last events'].map((name) => el('th', {}, name)))), el('tbody', {}, ...rows))));
    }
    document.getElementById('cells').replaceChildren(...(sections.length ? sections : [el('p', {}, 'No agents supervised yet.')]));
    document.getElementById('problems').textContent = (status.problems || []).join('\\n');
    renderProviders();
    renderHosts();
  }
  function renderHosts() {
    const cluster = status.cluster;
    document.getElementById('hosts-box').hidden = !cluster;
    if (!cluster) return;
    const held = new Map([[cluster.host, Object.keys(cluster.held || {}).length]]);
    for (const owner of Object.values(cluster.remote || {})) held.set(owner.host, (held.get(owner.host) || 0) + 1);
    document.getElementById('hosts-note').textContent = 'this host: ' + cluster.host + (cluster.fenced ? ' · FENCED (lease lost: ' + (cluster.on_partition === 'stop' ? 'its agents are stopped' : 'reviving nothing') + ')' : '') + ' · lease ' + cluster.lease_s + ' s';
    document.getElementById('hosts').replaceChildren(...(cluster.hosts || []).map((host) =>
      el('tr', { 'data-host': host.host },
        el('td', {}, el('strong', {}, host.host), host.host === cluster.host ? ' (this host)' : ''),
        el('td', {}, host.lease_age_s === null ? '—' : host.lease_age_s.toFixed(1) + ' s'),
        el('td', {}, String(host.pid || '—')),
        el('td', {}, String(held.get(host.host) || 0)))));
  }
  function renderProviders() {
    const providers = status.providers || [];
    document.getElementById('providers-box').hidden = providers.length === 0;
    document.getElementById('providers').replaceChildren(...providers.map((entry) =>
      el('tr', { 'data-provider': entry.provider, 'data-state': entry.status },
        el('td', {}, el('strong', {}, entry.provider)),
        el('td', {}, el('span', { class: 'state ' + entry.status }, entry.status)),
        el('td', { title: entry.since }, age(entry.since)),
        el('td', { class: 'events' }, (entry.evidence || []).join('\\n')))));
  }
  let pending;
  async function refresh() {
    try {
      const response = await fetch('/api/status', { cache: 'no-store' });
      status = await response.json();
      render();
      renderTimeline();
      if (shownLog) await showLog(shownLog);
    } catch (error) { say('cannot reach the daemon: ' + error.message); }
  }
  const soon = () => { clearTimeout(pending); pending = setTimeout(refresh, 100); };
  // An event may come both from the seed and the stream: kept once.
  const seen = new Set();
  const TIMELINE_KINDS = ['agent_dead', 'agent_revived', 'agent_recovered'];
  const addEvent = (data) => {
    const id = [data.cell, data.agent, data.event, data.ts, data.action || '', data.reason || ''].join('|');
    if (seen.has(id)) return;
    seen.add(id);
    if (seen.size > 5000) for (const old of seen) { seen.delete(old); if (seen.size <= 4000) break; }
    const key = data.cell + '/' + (data.agent || '');
    if (!events.has(key)) events.set(key, []);
    const list = events.get(key);
    list.push(data);
    list.sort((a, b) => a.ts.localeCompare(b.ts));
    if (list.length > 20) list.shift();
    if (TIMELINE_KINDS.includes(data.event) && data.agent) {
      timeline.push(data);
      timeline.sort((a, b) => a.ts.localeCompare(b.ts));
    }
  };
  const seeded = fetch('/api/recent-events?hours=' + HOURS, { cache: 'no-store' })
    .then((response) => response.json())
    .then((body) => { for (const data of body.events || []) addEvent(data); soon(); })
    .catch((error) => say('cannot read the recent events: ' + error.message));
  const stream = new EventSource('/api/events?since=' + encodeURIComponent(new Date(Date.now() - 60_000).toISOString()));
  const remember = (message) => {
    addEvent(JSON.parse(message.data));
    soon();
  };
  for (const kind of ${JSON.stringify(SHOWN_KINDS)})
    stream.addEventListener(kind, remember);
  // A kind this version does not know arrives as a plain message: shown all the same.
  stream.onmessage = remember;
  void seeded;
  refresh();
  setInterval(refresh, 2000);
  setInterval(render, 1000);
})();
</script>
</body>
</html>
`;
