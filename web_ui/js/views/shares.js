// Shares: files and texts the appliance holds for whoever has the code (or the link, or the QR
// code); push one to a paired device; revoke. New shares from files picked here, or from text.

import { api } from '../api.js';
import { confirmButton, field, h, safeUrl, setText, syncList } from '../dom.js';
import * as format from '../format.js';
import * as live from '../live.js';
import { send } from '../uploads.js';
import { attempt, notify, page, progressText, section } from '../ui.js';

function shareCard() {
  const card = h('li', { class: 'card share' });
  card.parts = {
    name: h('strong', { class: 'name' }),
    meta: h('span', { class: 'muted' }),
    files: h('ul', { class: 'files' }),
    code: h('p', { class: 'code' }),
    link: h('a', { class: 'link', href: '#', rel: 'noopener noreferrer' }),
    expiry: h('span', { class: 'muted small' }),
    qr: h('div', { class: 'qr' }),
    actions: h('div', { class: 'actions' }),
  };
  const p = card.parts;
  card.append(h('div', { class: 'row' }, p.name), h('div', { class: 'row meta' }, p.meta), p.files,
    h('div', { class: 'share-code' }, h('div', {}, p.code, p.link, p.expiry), p.qr), p.actions);
  return card;
}

function updater(devices) {
  return (card, share) => {
    const p = card.parts;
    setText(p.name, share.name);
    setText(p.meta, `${format.bytes(share.size)} · ${format.plural(share.files.length, 'file', 'files')}`);
    syncList(p.files, share.files.slice(0, 5), (f) => f.path, () => h('li', { class: 'small' }),
      (li, f) => setText(li, `${f.path} (${format.bytes(f.size)})`));
    const hasCode = Boolean(share.code);
    setText(p.code, hasCode ? format.code(share.code) : 'No live code (used, expired, or a share for a device)');
    p.code.classList.toggle('muted', !hasCode);
    const url = hasCode && share.url && safeUrl(share.url) ? share.url : null;
    p.link.hidden = !url;
    if (url && p.link.getAttribute('href') !== url) p.link.setAttribute('href', url);
    setText(p.link, url || '');
    setText(p.expiry, hasCode && share.expires_at ? `code expires ${format.relative(share.expires_at)}` : '');
    const qrSrc = hasCode ? `/api/v1/shares/${encodeURIComponent(share.share_id)}/qr.svg` : null;
    if (p.qr.dataset.src !== (qrSrc || '')) {
      p.qr.dataset.src = qrSrc || '';
      p.qr.replaceChildren(...(qrSrc ? [h('img', { src: qrSrc, alt: `QR code of the link to ${share.name}`, width: '180', height: '180' })] : []));
    }
    const key = `${hasCode}:${devices.map((d) => d.id).join(',')}`;
    if (p.actions.dataset.for !== key) {
      p.actions.dataset.for = key;
      p.actions.replaceChildren(...shareActions(share, url, devices));
    }
  };
}

function shareActions(share, url, devices) {
  const out = [];
  if (url && navigator.clipboard) {
    out.push(h('button', {
      type: 'button', class: 'quiet', text: 'Copy link',
      onclick: () => attempt(() => navigator.clipboard.writeText(url), 'Link copied.'),
    }));
  }
  if (devices.length) {
    const select = h('select', { 'aria-label': `Device to push ${share.name} to` },
      devices.map((d) => h('option', { value: d.id, text: d.name || d.id })));
    out.push(h('span', { class: 'push' }, select, h('button', {
      type: 'button', class: 'quiet', text: 'Push to device',
      onclick: () => attempt(() => api('POST', `/api/v1/shares/${encodeURIComponent(share.share_id)}/push`,
        { json: { device: select.value } }), 'Sending to the device: follow it on the dashboard.'),
    })));
  }
  out.push(confirmButton('Revoke', 'Really revoke?', () => attempt(
    () => api('DELETE', `/api/v1/shares/${encodeURIComponent(share.share_id)}`), 'Revoked.')));
  return out;
}

function newShareForm(onCreated) {
  const input = h('input', { type: 'file', id: 'share-files', multiple: true });
  const name = h('input', { id: 'share-name', autocomplete: 'off', placeholder: 'optional' });
  const status = h('p', { class: 'muted', role: 'status' });
  const bar = h('progress', { max: 1, value: 0, hidden: true });
  const form = h('form', { class: 'inline-form', id: 'share-form' }, field('Files', input), field('Share name', name),
    h('button', { type: 'submit', class: 'primary', text: 'Share' }), bar, status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!input.files.length) {
      notify('Choose at least one file.', 'error');
      return;
    }
    const body = new FormData();
    let total = 0;
    for (const file of input.files) {
      body.append('file', file, file.name);
      total += file.size;
    }
    if (name.value.trim()) body.append('name', name.value.trim());
    bar.hidden = false;
    bar.max = Math.max(total, 1);
    const started = performance.now();
    const share = await attempt(() => send('POST', '/api/v1/shares', body, {
      onProgress: (sent) => {
        bar.value = sent;
        const rate = (sent * 1000) / Math.max(performance.now() - started, 1);
        setText(status, progressText(sent, total, rate, rate > 0 ? (total - sent) / rate : null));
      },
    }));
    bar.hidden = true;
    setText(status, '');
    if (share) {
      form.reset();
      notify(`Shared: code ${format.code(share.code)}`);
      onCreated();
    }
  });
  return form;
}

function textShareForm(onCreated) {
  const text = h('textarea', { id: 'text-share', rows: '4', required: true, maxlength: String(1024 * 1024) });
  const name = h('input', { id: 'text-share-name', value: 'note.txt', autocomplete: 'off' });
  const form = h('form', { class: 'stacked-form', id: 'text-share-form' }, field('Text', text), field('File name', name),
    h('button', { type: 'submit', class: 'primary', text: 'Share text' }));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const share = await attempt(() => api('POST', '/api/v1/shares/text',
      { json: { text: text.value, name: name.value.trim() || 'note.txt' } }));
    if (share) {
      text.value = '';
      notify(`Shared: code ${format.code(share.code)}`);
      onCreated();
    }
  });
  return form;
}

export function render(main) {
  const list = h('ul', { class: 'cards', id: 'share-list' });
  const empty = h('p', { class: 'muted', text: 'No shares.' });
  let devices = [];

  let token = 0;
  async function reload() {
    const mine = ++token;
    const [shares, known] = await Promise.all([
      attempt(() => api('GET', '/api/v1/shares')),
      attempt(() => api('GET', '/api/v1/devices')),
    ]);
    if (mine !== token || !shares) return;
    devices = (known || []).filter((d) => d.status === 'approved');
    empty.hidden = syncList(list, [...shares].reverse(), (s) => s.share_id, shareCard, updater(devices)) > 0;
  }

  main.append(...page('Shares',
    section('Held for a receiver', list, empty),
    section('Share files', h('p', { class: 'muted', text: 'The appliance keeps them and answers a 6-digit code, '
      + 'a link and a QR code; whoever has the code receives them peer to peer.' }), newShareForm(reload)),
    section('Share a text', textShareForm(reload))));

  reload();
  const stops = [live.on('share', () => reload()), live.on('device', () => reload())];
  const timer = setInterval(reload, 30000); // keeps "code expires in" current
  return () => {
    stops.forEach((stop) => stop());
    clearInterval(timer);
  };
}
