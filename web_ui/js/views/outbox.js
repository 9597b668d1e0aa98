// The outbox queue: files dropped into a device's folder, and what became of each.

import { api } from '../api.js';
import { h, setText, syncList } from '../dom.js';
import * as format from '../format.js';
import * as live from '../live.js';
import { attempt, page, section } from '../ui.js';

function itemCard() {
  const card = h('li', { class: 'card outbox' });
  card.parts = {
    name: h('strong', { class: 'name' }),
    badge: h('span', { class: 'badge' }),
    meta: h('span', { class: 'muted' }),
    detail: h('span', { class: 'detail' }),
  };
  const p = card.parts;
  card.append(h('div', { class: 'row' }, p.name, p.badge), h('div', { class: 'row meta' }, p.meta), p.detail);
  return card;
}

function updateItem(card, item) {
  const p = card.parts;
  setText(p.name, item.path);
  setText(p.badge, item.state);
  p.badge.className = `badge outbox-${item.state}`;
  const parts = [format.bytes(item.size), `to ${item.folder}`];
  if (item.attempts) parts.push(format.plural(item.attempts, 'attempt', 'attempts'));
  if (item.next_attempt_at) parts.push(`next try ${format.relative(item.next_attempt_at)}`);
  if (item.disposition) parts.push(`then ${item.disposition}`);
  setText(p.meta, parts.join(' · '));
  setText(p.detail, item.error || '');
  p.detail.classList.toggle('error-text', Boolean(item.error));
}

export function render(main) {
  const list = h('ul', { class: 'cards compact', id: 'outbox-queue' });
  const empty = h('p', { class: 'muted', text: 'Nothing in the outbox queue. Drop files into '
    + '<outbox>/<device>/ on the appliance to send them to a paired device.' });
  const refresh = h('button', { type: 'button', class: 'quiet', text: 'Refresh' });

  async function reload() {
    const items = await attempt(() => api('GET', '/api/v1/outbox'));
    if (!items) return;
    empty.hidden = syncList(list, [...items].reverse(), (i) => i.id, itemCard, updateItem) > 0;
  }
  refresh.addEventListener('click', reload);
  main.append(...page('Outbox', section('Queue', h('div', { class: 'actions' }, refresh), list, empty)));
  reload();
  let pending = null;
  const stop = live.on('transfer', () => {
    clearTimeout(pending);
    pending = setTimeout(reload, 1000);
  });
  return () => {
    stop();
    clearTimeout(pending);
  };
}
