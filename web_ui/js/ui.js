// Pieces every view uses: notices, sections, and how a transfer is shown.

import { h, setText } from './dom.js';
import * as format from './format.js';

let noticeTimer = null;

/** Say something in the notice line (role=status); `kind` 'error' makes it stand out. */
export function notify(text, kind = 'info') {
  const notice = document.getElementById('notice');
  notice.className = `notice ${kind}`;
  setText(notice, text);
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    setText(notice, '');
    notice.className = 'notice';
  }, kind === 'error' ? 12000 : 6000);
}

/** Run `action`; show its error (if any) as a notice instead of throwing. */
export async function attempt(action, success) {
  try {
    const result = await action();
    if (success) notify(success);
    return result;
  } catch (error) {
    if (error.status !== 401) notify(error.message || String(error), 'error');
    return undefined;
  }
}

export function section(title, ...children) {
  return h('section', { class: 'panel' }, h('h2', { text: title }), ...children);
}

export function page(title, ...children) {
  return [h('h1', { text: title }), ...children];
}

const FINISHED = new Set(['done', 'failed', 'cancelled']);
const STATE_LABELS = {
  connecting: 'connecting', active: 'moving', retrying: 'retrying', done: 'done', failed: 'failed',
  cancelled: 'cancelled', held: 'held for approval', paused: 'paused',
};

export function isFinished(transfer) {
  return FINISHED.has(transfer.state);
}

export function stateBadge(state) {
  return h('span', { class: `badge state-${state}`, text: STATE_LABELS[state] || state });
}

/** What a transfer moves, for a title: its first file and how many more. */
export function transferName(transfer) {
  const files = transfer.files || [];
  if (!files.length) return transfer.direction === 'receive' ? '(waiting for the list of files)' : '(no files)';
  const more = files.length > 1 ? ` and ${format.plural(files.length - 1, 'more file', 'more files')}` : '';
  return `${files[0].path}${more}`;
}

function directionLabel(transfer) {
  if (transfer.direction === 'send') return transfer.device ? 'Sending to a device' : 'Sharing';
  if (transfer.device) return 'Receiving from a device';
  // An upload (PUT /api/v1/inbox) knows its file from the start and never belongs to a share;
  // a fetch by code has no files until it reached the share, and then its share id.
  return !transfer.share_id && (transfer.files || []).length ? 'Upload from a browser or script' : 'Receiving';
}

/** The numbers line: "12 MiB of 20 MiB · 4 MiB/s · 3 s left". */
export function progressText(done, total, speed, etaSeconds) {
  const parts = [`${format.bytes(done)} of ${format.bytes(total)}`];
  const s = format.speed(speed);
  if (s) parts.push(s);
  const e = format.eta(etaSeconds);
  if (e) parts.push(e);
  return parts.join(' · ');
}

/** A card for one transfer; fill it with updateTransferCard. `actions(transfer)` gives its buttons. */
export function transferCard() {
  const card = h('li', { class: 'card transfer' });
  card.parts = {
    name: h('strong', { class: 'name' }),
    badge: h('span'),
    kind: h('span', { class: 'muted' }),
    bar: h('progress', { max: 1, value: 0 }),
    numbers: h('span', { class: 'numbers' }),
    detail: h('span', { class: 'detail' }),
    actions: h('div', { class: 'actions' }),
  };
  const p = card.parts;
  card.append(
    h('div', { class: 'row' }, p.name, p.badge),
    h('div', { class: 'row meta' }, p.kind, p.numbers),
    p.bar,
    p.detail,
    p.actions,
  );
  return card;
}

export function updateTransferCard(card, transfer, actions) {
  const p = card.parts;
  setText(p.name, transferName(transfer));
  p.name.title = transferName(transfer);
  if (p.badge.dataset.state !== transfer.state) {
    const badge = stateBadge(transfer.state);
    badge.dataset.state = transfer.state;
    p.badge.replaceWith(badge);
    p.badge = badge;
  }
  setText(p.kind, `${directionLabel(transfer)} · ${format.when(transfer.created_at)}`);
  const finished = isFinished(transfer);
  p.bar.hidden = finished;
  p.bar.max = Math.max(transfer.bytes_total, 1);
  p.bar.value = transfer.bytes_done;
  p.bar.setAttribute('aria-label', `${format.percent(transfer.bytes_done, transfer.bytes_total)}%`);
  setText(p.numbers, finished ? format.bytes(transfer.bytes_total)
    : progressText(transfer.bytes_done, transfer.bytes_total, transfer.speed, transfer.eta));
  let detail = '';
  if (transfer.error) detail = transfer.error;
  else if (transfer.state === 'done' && transfer.direction === 'receive') {
    const placed = (transfer.files || []).map((f) => f.final_path).filter(Boolean);
    if (placed.length) detail = `In the inbox: ${placed.slice(0, 3).join(', ')}${placed.length > 3 ? ', …' : ''}`;
  }
  setText(p.detail, detail);
  p.detail.classList.toggle('error-text', Boolean(transfer.error) && transfer.state === 'failed');
  const key = `${transfer.state}`;
  if (p.actions.dataset.for !== key) {
    p.actions.replaceChildren(...actions(transfer));
    p.actions.dataset.for = key;
  }
}
