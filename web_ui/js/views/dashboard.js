// The dashboard: transfers moving now (progress, speed, ETA, live from the event stream) and
// the history of finished ones.

import { api } from '../api.js';
import { h, syncList, setText } from '../dom.js';
import * as live from '../live.js';
import * as uploads from '../uploads.js';
import * as wakelock from '../wakelock.js';
import { attempt, isFinished, page, section, transferCard, updateTransferCard } from '../ui.js';

const HISTORY_SHOWN = 50;

function post(transfer, action, done) {
  return h('button', {
    type: 'button', class: 'quiet', text: action[0].toUpperCase() + action.slice(1), dataset: { action },
    onclick: () => attempt(() => api('POST', `/api/v1/transfers/${encodeURIComponent(transfer.id)}/${action}`), done),
  });
}

/** Pausing needs a task of ours to stop: not an upload (HTTP), a held transfer, or a push we receive. */
function pausable(transfer) {
  const upload = transfer.direction === 'receive' && !transfer.share_id && !transfer.device
    && (transfer.files || []).length > 0; // an upload knows its file at once; a fetch only once at the share
  const pushedToUs = transfer.direction === 'receive' && transfer.device;
  return ['connecting', 'active', 'retrying'].includes(transfer.state) && !upload && !pushedToUs;
}

function actions(transfer) {
  const out = [];
  if (pausable(transfer)) out.push(post(transfer, 'pause', 'Paused.'));
  if (transfer.state === 'paused') out.push(post(transfer, 'resume', 'Resumed.'));
  if (!isFinished(transfer)) {
    out.push(h('button', {
      type: 'button', class: 'quiet', text: transfer.state === 'held' ? 'Refuse' : 'Cancel',
      onclick: () => attempt(() => api('POST', `/api/v1/transfers/${encodeURIComponent(transfer.id)}/cancel`),
        'Cancelled.'),
    }));
  }
  const retryable = (transfer.direction === 'receive' && transfer.share_id && !transfer.device)
    || (transfer.direction === 'send' && transfer.device);
  if (['failed', 'cancelled'].includes(transfer.state) && retryable) {
    out.push(h('button', {
      type: 'button', class: 'quiet', text: 'Retry',
      onclick: () => attempt(() => api('POST', `/api/v1/transfers/${encodeURIComponent(transfer.id)}/retry`),
        'Started again.'),
    }));
  }
  return out;
}

export function render(main) {
  const activeList = h('ul', { class: 'cards', id: 'active-transfers' });
  const activeEmpty = h('p', { class: 'muted', text: 'Nothing is moving right now.' });
  const historyList = h('ul', { class: 'cards compact', id: 'transfer-history' });
  const historyEmpty = h('p', { class: 'muted', text: 'No finished transfers yet.' });
  const uploadNote = h('p', { class: 'note', hidden: true });
  const wakeNote = h('p', { class: 'muted small', hidden: true, text: 'Keeping the screen on while files move.' });

  main.append(...page('Dashboard',
    section('Moving now', uploadNote, activeList, activeEmpty, wakeNote),
    section('History', historyList, historyEmpty)));

  function refresh() {
    const all = live.sortedTransfers();
    const active = all.filter((t) => !isFinished(t));
    const history = all.filter(isFinished).slice(0, HISTORY_SHOWN);
    activeEmpty.hidden = syncList(activeList, active, (t) => t.id, transferCard,
      (card, t) => updateTransferCard(card, t, actions)) > 0;
    historyEmpty.hidden = syncList(historyList, history, (t) => t.id, transferCard,
      (card, t) => updateTransferCard(card, t, actions)) > 0;
    const sending = uploads.queue.filter((i) => ['queued', 'hashing', 'sending', 'verifying'].includes(i.state)).length;
    uploadNote.hidden = sending === 0;
    setText(uploadNote, sending ? `This page is sending ${sending} file(s) to the appliance (see Send).` : '');
    wakeNote.hidden = !wakelock.held();
  }

  const stops = [live.on('transfer', refresh), uploads.on(refresh)];
  const timer = setInterval(refresh, 1000); // the wake-lock note, and "ago" times
  refresh();
  return () => {
    stops.forEach((stop) => stop());
    clearInterval(timer);
  };
}
