// Paired devices: approve, revoke, rename, forget; their safety words; pairing with another
// appliance (offer a code here, or join the other one's).

import { api } from '../api.js';
import { confirmButton, field, h, setText, syncList } from '../dom.js';
import * as format from '../format.js';
import * as live from '../live.js';
import { attempt, notify, page, section } from '../ui.js';

const STATUS_TEXT = { approved: 'approved', pending: 'waiting for approval', revoked: 'revoked' };

function presenceText(presence) {
  if (!presence || presence.online === null || presence.online === undefined) return 'online: unknown';
  return presence.online ? 'online' : 'offline';
}

function deviceCard() {
  const card = h('li', { class: 'card device' });
  const nameInput = h('input', { autocomplete: 'off', maxlength: '64', 'aria-label': 'New name' });
  card.parts = {
    name: h('strong', { class: 'name' }),
    badge: h('span', { class: 'badge' }),
    meta: h('span', { class: 'muted' }),
    words: h('p', { class: 'words' }),
    fingerprint: h('code', { class: 'hash' }),
    actions: h('div', { class: 'actions' }),
    renameForm: h('form', { class: 'inline-form rename', hidden: true },
      field('Name', nameInput), h('button', { type: 'submit', class: 'primary', text: 'Save' })),
    nameInput,
  };
  const p = card.parts;
  card.append(h('div', { class: 'row' }, p.name, p.badge), h('div', { class: 'row meta' }, p.meta), p.words,
    p.fingerprint, p.actions, p.renameForm);
  p.renameForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const done = await attempt(() => api('PATCH', `/api/v1/devices/${encodeURIComponent(card.device.id)}`,
      { json: { name: nameInput.value } }), 'Renamed.');
    if (done) {
      p.renameForm.hidden = true;
      card.refresh(done);
    }
  });
  return card;
}

function updater(reload) {
  return (card, device) => {
    const p = card.parts;
    card.device = device;
    card.refresh = reload;
    setText(p.name, device.name || '(no name)');
    setText(p.badge, STATUS_TEXT[device.status] || device.status);
    p.badge.className = `badge device-${device.status}`;
    const parts = [presenceText(device.presence), `paired ${format.when(device.paired_at)}`];
    if (device.last_seen) parts.push(`last seen ${format.relative(device.last_seen)}`);
    setText(p.meta, parts.join(' · '));
    const words = device.safety_words && device.safety_words.length ? device.safety_words.join(' ') : '';
    setText(p.words, words ? `Safety words: ${words}` : '');
    p.words.hidden = !words;
    setText(p.fingerprint, device.fingerprint && device.fingerprint.length ? `Key ${device.fingerprint.join(' ')}` : '');
    if (p.actions.dataset.for !== device.status) {
      p.actions.dataset.for = device.status;
      p.actions.replaceChildren(...actions(card, device, reload));
    }
  };
}

function actions(card, device, reload) {
  const path = `/api/v1/devices/${encodeURIComponent(device.id)}`;
  const setStatus = (status, message) => async () => {
    if (await attempt(() => api('PATCH', path, { json: { status } }), message)) reload();
  };
  const out = [];
  if (device.status !== 'approved') {
    out.push(h('button', { type: 'button', class: 'primary', text: 'Approve', onclick: setStatus('approved', 'Approved.') }));
  }
  if (device.status !== 'revoked') {
    out.push(confirmButton('Revoke', 'Really revoke?', setStatus('revoked', 'Revoked.')));
  }
  out.push(h('button', {
    type: 'button', class: 'quiet', text: 'Rename',
    onclick: () => {
      const p = card.parts;
      p.renameForm.hidden = !p.renameForm.hidden;
      if (!p.renameForm.hidden) {
        p.nameInput.value = card.device.name;
        p.nameInput.focus();
      }
    },
  }));
  out.push(confirmButton('Forget', 'Really forget?', async () => {
    if ((await attempt(() => api('DELETE', path), 'Forgotten.')) !== undefined) reload();
  }));
  return out;
}

function pairingSection(reload) {
  const offerResult = h('div', { class: 'pairing-offer', role: 'status' });
  const offer = h('button', { type: 'button', class: 'primary', text: 'Offer a pairing code' });
  offer.addEventListener('click', async () => {
    const made = await attempt(() => api('POST', '/api/v1/pair', { json: {} }));
    if (!made) return;
    offerResult.replaceChildren(
      h('p', { class: 'code', text: format.code(made.code) }),
      h('p', { class: 'muted small', text: `On the other appliance, join with this code and the signaling server ${made.signal}. `
        + `It expires ${format.relative(made.expires_at)}.` }),
    );
  });
  const code = h('input', { id: 'pair-code', inputmode: 'numeric', maxlength: '7', required: true, autocomplete: 'off' });
  const signal = h('input', { id: 'pair-signal', type: 'url', required: true, placeholder: 'ws://other:8081', autocomplete: 'off' });
  const join = h('form', { class: 'inline-form', id: 'pair-form' }, field('Code', code), field('Its signaling server', signal),
    h('button', { type: 'submit', text: 'Join' }));
  join.addEventListener('submit', async (event) => {
    event.preventDefault();
    const digits = code.value.replace(/\s+/g, '');
    if (!/^\d{6}$/.test(digits)) {
      notify('A code is 6 digits.', 'error');
      return;
    }
    const device = await attempt(() => api('POST', '/api/v1/pair', { json: { code: digits, signal: signal.value.trim() } }));
    if (device) {
      notify(`Paired with ${device.name || device.id}. Compare the safety words on both sides.`);
      join.reset();
      reload();
    }
  });
  return section('Pair another appliance',
    h('p', { class: 'muted', text: 'Offer a code here and join it there, or the other way round.' }),
    h('div', { class: 'actions spaced' }, offer), offerResult, join);
}

export function render(main) {
  const list = h('ul', { class: 'cards', id: 'device-list' });
  const empty = h('p', { class: 'muted', text: 'No paired devices.' });
  let token = 0;
  async function reload() {
    const mine = ++token;
    const devices = await attempt(() => api('GET', '/api/v1/devices'));
    if (mine !== token || !devices) return;
    empty.hidden = syncList(list, devices, (d) => d.id, deviceCard, updater(reload)) > 0;
  }
  main.append(...page('Devices', section('Paired devices', list, empty), pairingSection(reload)));
  reload();
  return live.on('device', () => reload());
}
