// The share link (/r/<code>): receive the share in this browser over WebRTC (streamed to disk where
// the browser can, otherwise kept in memory and offered as downloads), or, logged in, fetch it into
// the appliance's inbox. Every name the sender chose is shown as text.

import { api } from '../api.js';
import { h, replace, setText } from '../dom.js';
import * as format from '../format.js';
import { receiveShare } from '../transfer/receiver.js';
import { signalUrlFor } from '../transfer/signal.js';
import { MEMORY_WARNING_BYTES, MemorySink, diskAvailable, pickDiskSink } from '../transfer/sinks.js';
import { RateMeter } from '../uploads.js';
import { attempt, progressText, section } from '../ui.js';
import * as wakelock from '../wakelock.js';

function invalid(main) {
  main.append(h('h1', { text: 'Not a share link' }),
    h('p', { text: 'A share link ends with a 6-digit code.' }), h('p', {}, h('a', { href: '/', text: 'Go to the appliance' })));
  return () => {};
}

/** The offer shown to the person; resolves with the chosen sink, rejects when refused. */
function choose(area, files) {
  const total = files.reduce((sum, f) => sum + f.size, 0);
  return new Promise((resolve, reject) => {
    const list = h('ul', { class: 'files', id: 'receive-files' },
      ...files.slice(0, 200).map((f) => h('li', {}, h('span', { class: 'name', text: f.path }), ' ',
        h('span', { class: 'muted', text: format.bytes(f.size) }))));
    const more = files.length > 200 ? h('p', { class: 'muted', text: `and ${files.length - 200} more` }) : null;
    const buttons = h('div', { class: 'actions' });
    const summary = h('p', { text: `${format.plural(files.length, 'file', 'files')}, ${format.bytes(total)}` });
    const warning = !diskAvailable() && total > MEMORY_WARNING_BYTES
      ? h('p', { class: 'error-text', id: 'receive-memory-warning',
        text: `This browser cannot write to disk as it receives, so all ${format.bytes(total)} would be kept in `
          + 'memory first; a phone may run out. A computer with doorstep or Chromium (https) handles large shares better.' })
      : null;
    if (diskAvailable()) {
      buttons.append(h('button', { type: 'button', class: 'primary', id: 'receive-save',
        text: files.length === 1 ? 'Save as\u2026' : 'Save into a folder\u2026',
        onclick: () => pickDiskSink(files).then(resolve, (error) => {
          if (error.name !== 'AbortError') reject(error); // a cancelled picker leaves the choice open
        }) }));
    }
    buttons.append(
      h('button', { type: 'button', class: diskAvailable() ? '' : 'primary', id: 'receive-memory',
        text: diskAvailable() ? 'Keep in this tab, download after' : 'Receive', onclick: () => resolve(new MemorySink()) }),
      h('button', { type: 'button', class: 'quiet', id: 'receive-refuse', text: 'Refuse',
        onclick: () => reject(new Error('You refused the share.')) }),
    );
    replace(area, summary, list, more, warning, buttons);
  });
}

function downloads(result) {
  if (result.kind === 'disk') {
    return h('ul', { class: 'files' }, ...result.files.map((f) => h('li', { text: `saved as ${f.name}` })));
  }
  return h('ul', { class: 'files', id: 'receive-downloads' }, ...result.files.map((f) => h('li', {},
    h('a', { href: URL.createObjectURL(f.blob), download: f.name, class: 'download', text: `Download ${f.name}` }))));
}

function browserReceive(code) {
  const status = h('p', { id: 'receive-status', role: 'status', text: '' });
  const area = h('div', { id: 'receive-area' });
  const bar = h('progress', { max: 1, value: 0, hidden: true, id: 'receive-progress' });
  const numbers = h('p', { class: 'numbers muted' });
  const start = h('button', { type: 'button', class: 'primary', id: 'receive-start', text: 'Receive in this browser' });
  const meter = new RateMeter();
  let started = 0;

  start.addEventListener('click', async () => {
    start.disabled = true;
    wakelock.hold('receive');
    try {
      const health = await api('GET', '/api/v1/health');
      const { files, result } = await receiveShare({
        code,
        signalUrl: signalUrlFor(health.signal),
        choose: (offered) => {
          setText(status, 'The sender offers:');
          return choose(area, offered);
        },
        onStatus: (text) => setText(status, text),
        onProgress: (done, total) => {
          if (!started) {
            started = performance.now();
            bar.hidden = false;
            replace(area);
          }
          meter.sample(done);
          bar.value = total ? done / total : 1;
          const rate = meter.rate();
          setText(numbers, progressText(done, total, rate, rate ? (total - done) / rate : null));
        },
      });
      bar.value = 1;
      bar.hidden = false;
      setText(status, `Received ${format.plural(files.length, 'file', 'files')}; every SHA-256 matches.`);
      status.dataset.state = 'verified';
      replace(area, downloads(result));
    } catch (error) {
      status.dataset.state = 'failed';
      setText(status, error.message || String(error));
      replace(area);
    } finally {
      wakelock.release('receive');
    }
  });
  return section('Receive in this browser',
    h('p', { text: 'Files come straight from the appliance over an encrypted WebRTC connection and are checked '
      + 'against their SHA-256 before they count.' }),
    h('div', { class: 'actions' }, start), status, area, bar, numbers);
}

export function render(main, { code, loggedIn }) {
  if (!/^\d{6}$/.test(code)) return invalid(main);
  const command = `doorstep receive ${code}`;
  const elsewhere = [
    h('p', { text: 'On a computer with doorstep installed, run:' }),
    h('pre', {}, h('code', { text: command })),
  ];
  if (loggedIn) {
    elsewhere.push(h('div', { class: 'actions' }, h('button', {
      type: 'button', text: 'Fetch into this appliance\u2019s inbox',
      onclick: async () => {
        const transfer = await attempt(() => api('POST', '/api/v1/receive', { json: { code } }));
        if (transfer) window.location.assign('/#/dashboard');
      },
    })));
  } else {
    elsewhere.push(h('p', {}, h('a', { href: '/', text: 'Log in to manage this appliance' })));
  }
  main.append(
    h('h1', { text: 'A share for you' }),
    h('p', { text: 'Someone shared files with you through this appliance. The code works once and expires a few '
      + 'minutes after it was made.' }),
    h('p', { class: 'code', text: format.code(code) }),
    browserReceive(code),
    section('Or receive elsewhere', ...elsewhere),
  );
  return () => {};
}
