/**
 * The daemon's dashboard (`GET /`): one self-contained page (no build step, no framework) that
 * shows every cell and agent with its live state, pending approvals with approve/deny buttons,
 * and the last events per agent. It reads `GET /api/status`, follows `GET /api/events` (server-sent
 * events) to update as things happen, and posts decisions to `POST /api/approvals/:id/approve|deny`
 * with the bearer token, which it asks for once and keeps for the browser session only.
 */
export function renderDashboard(options: { title?: string } = {}): string {
  const title = escapeHtml(options.title ?? 'The Pit');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>
  :root { --bg:#0f1115; --panel:#171a21; --line:#262b36; --text:#e6e8ee; --dim:#8a93a6; --ok:#2fbf71; --warn:#e0a526; --dead:#e5484d; --unknown:#6b7280; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--text); }
  header { display:flex; align-items:baseline; gap:16px; padding:14px 20px; border-bottom:1px solid var(--line); }
  header h1 { font-size:18px; margin:0; }
  header .meta { color:var(--dim); font-size:12px; }
  #conn { margin-left:auto; font-size:12px; color:var(--dim); }
  #conn.live::before { content:"● "; color:var(--ok); } #conn.down::before { content:"● "; color:var(--dead); }
  main { padding:16px 20px; display:grid; gap:16px; grid-template-columns: minmax(0,2fr) minmax(280px,1fr); }
  section { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
  section h2 { font-size:13px; text-transform:uppercase; letter-spacing:.06em; color:var(--dim); margin:0 0 10px; }
  table { width:100%; border-collapse:collapse; }
  th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
  th { color:var(--dim); font-weight:500; font-size:12px; }
  .pill { display:inline-block; min-width:70px; text-align:center; padding:1px 8px; border-radius:999px; font-size:12px; font-weight:600; color:#0b0d10; }
  .healthy { background:var(--ok); } .degraded { background:var(--warn); } .dead { background:var(--dead); color:#fff; } .unknown { background:var(--unknown); color:#fff; }
  .cell-title { font-weight:600; margin:12px 0 4px; } .cell-title .dim { font-weight:400; }
  .dim { color:var(--dim); font-size:12px; }
  .approval { border:1px solid var(--line); border-radius:6px; padding:8px 10px; margin-bottom:8px; }
  .approval button { margin-right:6px; margin-top:6px; padding:4px 12px; border-radius:5px; border:0; cursor:pointer; font-weight:600; }
  .approve { background:var(--ok); color:#06140c; } .deny { background:var(--dead); color:#fff; }
  .events { font:12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; max-height:420px; overflow:auto; }
  .events div { padding:2px 0; border-bottom:1px dotted var(--line); }
  #error { color:var(--dead); font-size:12px; min-height:1em; }
  @media (max-width: 900px) { main { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<header><h1>${title}</h1><span class="meta" id="summary">loading…</span><span id="conn" class="down">connecting</span></header>
<main>
  <section><h2>Cells and agents</h2><div id="fleet"></div></section>
  <div>
    <section><h2>Pending approvals</h2><div id="approvals"><span class="dim">none</span></div><div id="error"></div></section>
    <section style="margin-top:16px"><h2>Recent events</h2><div class="events" id="events"></div></section>
  </div>
</main>
<script>
(() => {
  const $ = (id) => document.getElementById(id);
  const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'})[c]);
  const ms = (v) => v === undefined || v === null ? undefined : typeof v === 'number' ? v : Date.parse(v);
  const age = (seconds) => { if (seconds === undefined || !isFinite(seconds)) return '–'; const s = Math.max(0, Math.round(seconds));
    return s < 60 ? s + 's' : s < 3600 ? Math.floor(s/60) + 'm' + String(s%60).padStart(2,'0') + 's' : Math.floor(s/3600) + 'h' + String(Math.floor(s%3600/60)).padStart(2,'0') + 'm'; };
  const recent = new Map(); // agent key -> last events
  const feed = [];
  let status;

  function render() {
    if (!status) return;
    const now = Date.now();
    const counts = {};
    for (const a of status.agents) counts[a.health] = (counts[a.health] || 0) + 1;
    $('summary').textContent = status.agents.length + ' agents · ' + Object.entries(counts).map(([k, v]) => v + ' ' + k).join(' · ') + ' · ' + new Date(status.generated_at).toLocaleTimeString();
    const groups = new Map();
    for (const a of status.agents) { const k = a.cell || '(outside cells)'; if (!groups.has(k)) groups.set(k, []); groups.get(k).push(a); }
    let html = '';
    for (const [cell, agents] of groups) {
      const info = status.cells.find((c) => c.uuid === cell);
      html += '<div class="cell-title">' + esc(info ? (info.name || info.uuid.slice(0, 8)) : cell) + ' <span class="dim">' + esc(info ? info.mission + ' · ' + info.status : '') + '</span></div>';
      html += '<table><tr><th>agent</th><th>state</th><th>for</th><th>heartbeat</th><th>restarts</th><th>pending</th><th>last decision</th></tr>';
      for (const a of agents) {
        const since = ms(a.since);
        const last = (recent.get(a.key) || []).slice(-1)[0];
        html += '<tr data-agent="' + esc(a.key) + '" data-health="' + esc(a.health) + '">' +
          '<td><b>' + esc(a.agent) + '</b>' + (a.pid ? ' <span class="dim">pid ' + esc(a.pid) + '</span>' : '') + '</td>' +
          '<td><span class="pill ' + esc(a.health) + '">' + esc(a.health) + '</span></td>' +
          '<td class="dim">' + (since ? age((now - since) / 1000) : '–') + '</td>' +
          '<td class="dim">' + (a.heartbeat_age_s === undefined ? '–' : age(a.heartbeat_age_s) + ' ago') + '</td>' +
          '<td>' + esc(a.restarts) + (a.backoff_until && ms(a.backoff_until) > now ? ' <span class="dim">backoff ' + age((ms(a.backoff_until) - now) / 1000) + '</span>' : '') + '</td>' +
          '<td>' + (a.pending_approval ? '<span class="pill degraded">approval</span>' : '') + '</td>' +
          '<td class="dim">' + esc(a.last_decision ? a.last_decision.action + ': ' + a.last_decision.reason : last ? last.event : '') + '</td></tr>';
      }
      html += '</table>';
    }
    $('fleet').innerHTML = html || '<span class="dim">no agents supervised</span>';
    const approvals = (status.approvals || []).filter((r) => (r.status || 'pending') === 'pending');
    $('approvals').innerHTML = approvals.length ? approvals.map((r) =>
      '<div class="approval" data-approval="' + esc(r.id) + '"><b>' + esc(r.agent) + '</b> <span class="dim">' + esc(r.mission || '') + '</span>' +
      '<div class="dim">' + esc((r.reasons || []).join('; ')) + (r.substitute ? ' · substitute: ' + esc(r.substitute) : '') + '</div>' +
      '<div class="dim">expires ' + (ms(r.expires_at) ? new Date(ms(r.expires_at)).toLocaleString() : '?') + ' · id ' + esc(r.id) + '</div>' +
      '<button class="approve" data-id="' + esc(r.id) + '" data-decision="approve">Approve</button><button class="deny" data-id="' + esc(r.id) + '" data-decision="deny">Deny</button></div>').join('') : '<span class="dim">none</span>';
    $('events').innerHTML = feed.slice(-200).reverse().map((e) =>
      '<div><span class="dim">' + esc(new Date(e.ts).toLocaleTimeString()) + '</span> ' + esc(e.agent || '') + ' <b>' + esc(e.event) + '</b> ' + esc(e.reason || e.action || '') + '</div>').join('');
  }

  async function refresh() {
    try {
      const response = await fetch('/api/status', { cache: 'no-store' });
      status = await response.json();
      render();
    } catch (error) { $('error').textContent = 'status: ' + error.message; }
  }

  function token() {
    let value = sessionStorage.getItem('pit-token');
    if (!value) { value = prompt('The daemon\\'s HTTP token (PIT_HTTP_TOKEN) to approve or deny:') || ''; if (value) sessionStorage.setItem('pit-token', value); }
    return value;
  }

  document.addEventListener('click', async (event) => {
    const button = event.target.closest('button[data-id]');
    if (!button) return;
    const secret = token();
    if (!secret) return;
    button.disabled = true;
    const response = await fetch('/api/approvals/' + encodeURIComponent(button.dataset.id) + '/' + button.dataset.decision, {
      method: 'POST', headers: { authorization: 'Bearer ' + secret, 'content-type': 'application/json' }, body: JSON.stringify({ by: 'dashboard' }),
    }).catch((error) => ({ ok: false, status: 0, json: async () => ({ error: error.message }) }));
    const body = await response.json().catch(() => ({}));
    if (response.status === 401 || response.status === 403) sessionStorage.removeItem('pit-token');
    $('error').textContent = response.ok ? '' : (body.error || body.message || 'refused (' + response.status + ')');
    button.disabled = false;
    refresh();
  });

  function follow() {
    const source = new EventSource('/api/events?since=' + encodeURIComponent(new Date(Date.now() - 10 * 60 * 1000).toISOString()));
    source.onopen = () => { $('conn').className = 'live'; $('conn').textContent = 'live'; };
    source.onerror = () => { $('conn').className = 'down'; $('conn').textContent = 'reconnecting'; };
    const onEvent = (message) => {
      let data; try { data = JSON.parse(message.data); } catch { return; }
      feed.push(data);
      if (feed.length > 1000) feed.splice(0, feed.length - 1000);
      const key = data.cell && data.agent ? data.cell + '/' + data.agent : data.agent ? 'host/' + data.agent : undefined;
      if (key) { const list = recent.get(key) || []; list.push(data); recent.set(key, list.slice(-20)); }
      scheduleRefresh();
    };
    for (const kind of ${JSON.stringify(LIVE_EVENT_KINDS)}) source.addEventListener(kind, onEvent);
  }

  let pending;
  function scheduleRefresh() { if (!pending) pending = setTimeout(() => { pending = undefined; refresh(); }, 150); }

  refresh();
  follow();
  setInterval(refresh, 2000);
})();
</script>
</body>
</html>
`;
}

/** The event kinds the page listens for (server-sent events are named after the event). */
const LIVE_EVENT_KINDS = [
  'agent_dead', 'agent_healthy', 'agent_degraded', 'decision', 'revive_requested', 'revive_approved', 'revive_denied', 'agent_revived',
  'revive_failed', 'agent_substituted', 'config_rolled_back', 'checkpoint_created', 'checkpoint_restored', 'agent_joined', 'agent_left',
  'cell_created', 'cell_activated', 'cell_frozen', 'cell_archived', 'approval_expired', 'rollback_failed',
];

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}
