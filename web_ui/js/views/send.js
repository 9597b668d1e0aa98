// "Send to the appliance": pick files or a folder (or drop them); they land in the inbox. Or send
// them to another browser (views/browser_send.js).

import { h, syncList, setText } from '../dom.js';
import * as format from '../format.js';
import * as uploads from '../uploads.js';
import { page, progressText, section } from '../ui.js';
import { browserSendSection } from './browser_send.js';

const STATE_TEXT = {
  queued: 'waiting', waiting: 'waiting for the network', hashing: 'hashing', sending: 'sending', verifying: 'verifying',
  done: 'in the inbox', failed: 'failed', cancelled: 'cancelled',
};

function itemCard() {
  const card = h('li', { class: 'card upload' });
  card.parts = {
    name: h('strong', { class: 'name' }),
    badge: h('span', { class: 'badge' }),
    bar: h('progress', { max: 1, value: 0 }),
    numbers: h('span', { class: 'numbers' }),
    detail: h('span', { class: 'detail' }),
    cancel: h('button', { type: 'button', class: 'quiet', text: 'Cancel' }),
  };
  const p = card.parts;
  p.cancel.addEventListener('click', () => uploads.cancel(card.item));
  card.append(h('div', { class: 'row' }, p.name, p.badge), p.bar, h('div', { class: 'row meta' }, p.numbers),
    p.detail, h('div', { class: 'actions' }, p.cancel));
  return card;
}

function updateItem(card, item) {
  const p = card.parts;
  card.item = item;
  card.dataset.state = item.state;
  setText(p.name, item.path);
  p.name.title = item.path;
  setText(p.badge, STATE_TEXT[item.state] || item.state);
  p.badge.className = `badge upload-${item.state}`;
  const finished = ['done', 'failed', 'cancelled'].includes(item.state);
  p.bar.hidden = finished;
  p.bar.max = Math.max(item.size, 1);
  p.bar.value = item.sent;
  setText(p.numbers, finished ? format.bytes(item.size) : progressText(item.sent, item.size, item.speed, item.eta));
  let detail = '';
  if (item.state === 'failed') detail = item.error || 'failed';
  else if (item.state === 'waiting') detail = item.error;
  else if (item.state === 'done' && item.result) {
    const check = item.endToEnd ? 'SHA-256 checked end to end' : 'SHA-256 verified by the appliance';
    detail = `Saved as ${item.result.final_path} · ${check}: ${item.result.sha256}`;
  }
  setText(p.detail, detail);
  p.detail.classList.toggle('error-text', item.state === 'failed');
  p.cancel.hidden = finished;
}

function pathOf(file) {
  return file.webkitRelativePath || file.name;
}

export function render(main) {
  const filesInput = h('input', { type: 'file', id: 'send-files', multiple: true, class: 'visually-hidden', tabindex: '-1' });
  const folderInput = h('input', { type: 'file', id: 'send-folder', multiple: true, class: 'visually-hidden', tabindex: '-1' });
  folderInput.setAttribute('webkitdirectory', '');
  const pickFiles = h('button', { type: 'button', class: 'primary', text: 'Choose files', onclick: () => filesInput.click() });
  const pickFolder = h('button', { type: 'button', text: 'Choose a folder', onclick: () => folderInput.click() });
  const drop = h('div', { class: 'dropzone', id: 'dropzone' },
    h('p', { text: 'Drop files or folders here, or choose them:' }),
    h('div', { class: 'actions' }, pickFiles, pickFolder), filesInput, folderInput);
  const list = h('ul', { class: 'cards', id: 'upload-queue' });
  const empty = h('p', { class: 'muted', text: 'Nothing sent from this page yet.' });
  const clear = h('button', { type: 'button', class: 'quiet', text: 'Clear finished', onclick: () => uploads.clearFinished() });

  const take = (input) => {
    uploads.enqueue([...input.files].map((file) => ({ file, path: pathOf(file) })));
    input.value = '';
  };
  filesInput.addEventListener('change', () => take(filesInput));
  folderInput.addEventListener('change', () => take(folderInput));
  drop.addEventListener('dragover', (event) => {
    event.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', async (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    uploads.enqueue(await uploads.filesOfDrop(event.dataTransfer));
  });

  main.append(...page('Send to the appliance',
    section('Pick files',
      h('p', { class: 'muted', text: 'Files land in the appliance\u2019s inbox, checked with SHA-256, under their own '
        + 'names (a name already taken gets a number; nothing is overwritten).' }),
      drop),
    section('Sent from this page', list, empty, h('div', { class: 'actions' }, clear)),
    browserSendSection()));

  function refresh() {
    empty.hidden = syncList(list, [...uploads.queue].reverse(), (i) => i.id, itemCard, updateItem) > 0;
  }
  const stop = uploads.on(refresh);
  refresh();
  return stop;
}
