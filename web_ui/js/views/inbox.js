// The inbox: what arrived, with downloads; and fetching a share by its code into it.

import { api } from '../api.js';
import { confirmButton, field, h, setText, syncList } from '../dom.js';
import * as format from '../format.js';
import * as live from '../live.js';
import { attempt, notify, page, section } from '../ui.js';

function fileCard() {
  const card = h('li', { class: 'card file' });
  card.parts = {
    link: h('a', { class: 'name', href: '#' }),
    meta: h('span', { class: 'muted' }),
    hash: h('code', { class: 'hash' }),
    actions: h('div', { class: 'actions' }),
  };
  const p = card.parts;
  card.append(p.link, h('div', { class: 'row meta' }, p.meta), p.hash, p.actions);
  return card;
}

function fileUpdater(reload) {
  return (card, file) => {
    const p = card.parts;
    const href = `/api/v1/inbox/${format.urlPath(file.path)}`;
    if (p.link.getAttribute('href') !== href) {
      p.link.setAttribute('href', href);
      p.link.setAttribute('download', file.path.split('/').pop());
    }
    setText(p.link, file.path);
    setText(p.meta, `${format.bytes(file.size)} · ${format.when(file.mtime)}`);
    setText(p.hash, file.sha256 ? `SHA-256 ${file.sha256}` : '');
    p.hash.hidden = !file.sha256;
    if (!p.actions.childElementCount) {
      p.actions.append(
        h('a', { class: 'button quiet', href, download: file.path.split('/').pop(), text: 'Download' }),
        confirmButton('Delete', 'Really delete?', async () => {
          await attempt(() => api('DELETE', href), 'Deleted.');
          reload();
        }),
      );
    }
  };
}

export function render(main) {
  const list = h('ul', { class: 'cards', id: 'inbox-files' });
  const empty = h('p', { class: 'muted', text: 'The inbox is empty.' });
  const filter = h('input', { type: 'search', id: 'inbox-filter', placeholder: 'folder/ or name', autocomplete: 'off' });
  const summary = h('p', { class: 'muted' });
  const code = h('input', {
    id: 'receive-code', inputmode: 'numeric', pattern: '[0-9 ]{6,7}', maxlength: '7', required: true,
    autocomplete: 'off', placeholder: '123456',
  });
  const signal = h('input', { id: 'receive-signal', type: 'url', placeholder: 'ws://other-appliance:8081', autocomplete: 'off' });

  let token = 0;
  async function reload() {
    const mine = ++token;
    const files = await attempt(() => api('GET', `/api/v1/inbox?prefix=${encodeURIComponent(filter.value)}`));
    if (mine !== token || !files) return;
    empty.hidden = syncList(list, files, (f) => f.path, fileCard, fileUpdater(reload)) > 0;
    const total = files.reduce((sum, f) => sum + f.size, 0);
    setText(summary, `${format.plural(files.length, 'file', 'files')}, ${format.bytes(total)}`);
  }

  const receiveForm = h('form', { class: 'inline-form', id: 'receive-form' },
    field('Code', code), field('Signaling server (if it is another appliance\u2019s)', signal),
    h('button', { type: 'submit', class: 'primary', text: 'Fetch into the inbox' }));
  receiveForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const digits = code.value.replace(/\s+/g, '');
    if (!/^\d{6}$/.test(digits)) {
      notify('A code is 6 digits.', 'error');
      return;
    }
    const body = { code: digits };
    if (signal.value.trim()) body.signal = signal.value.trim();
    const started = await attempt(() => api('POST', '/api/v1/receive', { json: body }),
      'Receiving: follow it on the dashboard.');
    if (started) code.value = '';
  });

  let debounce = null;
  filter.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(reload, 250);
  });

  main.append(...page('Inbox',
    section('Files', field('Show paths starting with', filter), summary, list, empty),
    section('Fetch a share by its code', receiveForm)));

  reload();
  let pending = null;
  const stop = live.on('arrival', () => {
    clearTimeout(pending);
    pending = setTimeout(reload, 300);
  });
  return () => {
    stop();
    clearTimeout(pending);
    clearTimeout(debounce);
  };
}
