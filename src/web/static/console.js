// The console reads the same REST API as the CLI; nothing here has privileges of its own.
const api = '/api/v1';
const view = document.getElementById('view');
const errorBox = document.getElementById('error');
const login = document.getElementById('login');
let token = sessionStorage.getItem('silobreak-token') ?? '';
let tab = 'hosts';

async function call(method, path, body) {
  const response = await fetch(api + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await response.json().catch(() => ({}));
  if (!response.ok)
    throw Object.assign(new Error(json.detail ?? response.statusText), { status: response.status });
  return json;
}

const esc = (v) =>
  String(v ?? '').replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const size = (b) => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) {
    b /= 1024;
    i++;
  }
  return `${b.toFixed(i ? 1 : 0)} ${units[i]}`;
};
const ago = (iso) => {
  if (!iso) return '';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
};
const state = (s) => `<span class="state-${esc(s)}">${esc(s)}</span>`;
const table = (heads, rows) =>
  `<table><thead><tr>${heads.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;

const views = {
  async hosts() {
    const { items } = await call('GET', '/hosts?limit=1000');
    return table(
      ['Name', 'State', 'Address', 'Accelerator', 'CPUs', 'Memory free', 'Pool'],
      items.map((h) => [
        esc(h.name),
        state(h.state),
        esc(h.fabricAddress),
        esc(h.accelerator),
        esc(h.cpus),
        h.memoryFreeBytes === undefined ? '' : size(h.memoryFreeBytes),
        esc(h.pool ?? ''),
      ]),
    );
  },
  async vms() {
    const { items } = await call('GET', '/vms?limit=1000');
    return table(
      ['Name', 'State', 'Host', 'vCPUs', 'Memory', 'Disks', 'IP', ''],
      items.map((v) => [
        esc(v.name),
        state(v.state),
        esc(v.host),
        esc(v.vcpus),
        `${esc(v.memoryMiB)} MiB`,
        v.disks.map((d) => `${esc(d.id)} ${size(d.virtualSizeBytes)}`).join(', '),
        esc(v.guestIp ?? ''),
        v.state === 'running'
          ? `<button data-act="shutdown" data-vm="${esc(v.id)}">Shut down</button> <button data-act="stop" data-vm="${esc(v.id)}">Stop</button>`
          : v.state === 'stopped'
            ? `<button data-act="start" data-vm="${esc(v.id)}">Start</button>`
            : '',
      ]),
    );
  },
  async jobs() {
    const { items } = await call('GET', '/jobs?limit=100');
    return table(
      ['Kind', 'Target', 'State', 'Phase', 'Progress', 'Message', 'Started'],
      items.map((j) => [
        esc(j.kind),
        esc(j.target.name),
        state(j.state),
        esc(j.progress.phase),
        `<span class="bar"><span style="width:${Number(j.progress.percent)}%"></span></span> ${Math.floor(j.progress.percent)}%`,
        esc(j.error?.detail ?? j.progress.message),
        ago(j.startedAt ?? j.createdAt),
      ]),
    );
  },
  async changes() {
    const { items } = await call('GET', '/changes?limit=200');
    return table(
      ['When', 'Who', 'Object', 'Action', 'Changes'],
      items.map((c) => [
        ago(c.at),
        esc(c.actor),
        `${esc(c.object.kind)} ${esc(c.object.name)}`,
        esc(c.action),
        c.changes
          .map((f) => `${esc(f.field)}: ${esc(JSON.stringify(f.before))} → ${esc(JSON.stringify(f.after))}`)
          .join('; '),
      ]),
    );
  },
};

async function render() {
  if (!token) {
    login.hidden = false;
    view.innerHTML = '';
    return;
  }
  try {
    const info = await call('GET', '/info');
    document.getElementById('who').textContent =
      `${info.token.name} (${info.token.role}) · ${info.hosts} hosts · ${info.vms} VMs`;
    view.innerHTML = await views[tab]();
    errorBox.hidden = true;
    login.hidden = true;
  } catch (error) {
    if (error.status === 401) {
      token = '';
      sessionStorage.removeItem('silobreak-token');
      login.hidden = false;
    }
    errorBox.textContent = error.message;
    errorBox.hidden = false;
  }
}

document.getElementById('tabs').addEventListener('click', (event) => {
  const button = event.target.closest('button[data-tab]');
  if (!button) return;
  tab = button.dataset.tab;
  for (const b of document.querySelectorAll('nav button')) b.classList.toggle('active', b === button);
  render();
});
login.addEventListener('submit', (event) => {
  event.preventDefault();
  token = document.getElementById('token').value.trim();
  sessionStorage.setItem('silobreak-token', token);
  render();
});
view.addEventListener('click', async (event) => {
  const button = event.target.closest('button[data-act]');
  if (!button) return;
  button.disabled = true;
  try {
    await call('POST', `/vms/${encodeURIComponent(button.dataset.vm)}/${button.dataset.act}`, {});
    tab = 'jobs';
    for (const b of document.querySelectorAll('nav button'))
      b.classList.toggle('active', b.dataset.tab === 'jobs');
  } catch (error) {
    errorBox.textContent = error.message;
    errorBox.hidden = false;
  }
  render();
});

render();
setInterval(render, 3000);
