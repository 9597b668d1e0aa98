// What the daemon is doing, kept current by its event stream (GET /api/v1/events, server-sent
// events: transfer, arrival, share, device). The browser's EventSource reconnects by itself and
// sends Last-Event-ID, so nothing is missed across a short drop. When the stream cannot come
// back (the session ended, the network changed under it), this reconnects itself and reloads
// the transfer list, which makes up for any events lost meanwhile.

import { api } from './api.js';
import * as wakelock from './wakelock.js';

const ACTIVE = new Set(['connecting', 'active', 'retrying']);
const RETRY_MS = 3000;
const HISTORY = 200;

export const transfers = new Map();
let source = null;
let connected = false;
let running = false;
let retryTimer = null;
const listeners = { transfer: new Set(), arrival: new Set(), share: new Set(), device: new Set(), connection: new Set() };

/** on('transfer', fn): fn(payload) for each event of that kind; returns a function that stops it. */
export function on(kind, fn) {
  listeners[kind].add(fn);
  return () => listeners[kind].delete(fn);
}

function emit(kind, payload) {
  for (const fn of [...listeners[kind]]) {
    try {
      fn(payload);
    } catch (error) {
      console.error(error); // one broken view must not stop the others
    }
  }
}

export function isConnected() {
  return connected;
}

export function isActive(transfer) {
  return ACTIVE.has(transfer.state);
}

/** Transfers, newest first. */
export function sortedTransfers() {
  return [...transfers.values()].sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1));
}

function setConnected(value) {
  if (connected !== value) {
    connected = value;
    emit('connection', value);
  }
}

function updateWakeLock() {
  const moving = [...transfers.values()].some((t) => t.state === 'active');
  if (moving) wakelock.hold('transfers');
  else wakelock.release('transfers');
}

function acceptTransfer(transfer) {
  transfers.set(transfer.id, transfer);
  updateWakeLock();
  emit('transfer', transfer);
}

export async function reload() {
  const list = await api('GET', `/api/v1/transfers?limit=${HISTORY}`);
  transfers.clear();
  for (const transfer of list) transfers.set(transfer.id, transfer);
  updateWakeLock();
  emit('transfer', null);
}

function parse(event) {
  try {
    return JSON.parse(event.data);
  } catch {
    return null;
  }
}

function open() {
  clearTimeout(retryTimer);
  if (source) source.close();
  source = new EventSource('/api/v1/events');
  source.addEventListener('open', () => setConnected(true));
  source.addEventListener('transfer', (event) => {
    const transfer = parse(event);
    if (transfer) acceptTransfer(transfer);
  });
  for (const kind of ['arrival', 'share', 'device']) {
    source.addEventListener(kind, (event) => {
      const payload = parse(event);
      if (payload) emit(kind, payload);
    });
  }
  source.addEventListener('error', () => {
    setConnected(false);
    if (source.readyState === EventSource.CLOSED && running) {
      // The browser gave up (an error status, such as 401): try again ourselves, from a fresh list.
      retryTimer = setTimeout(() => restart(), RETRY_MS);
    }
  });
}

async function restart() {
  if (!running) return;
  try {
    await reload();
    open();
  } catch {
    retryTimer = setTimeout(() => restart(), RETRY_MS); // a 401 ends the session (api.js) and stops us
  }
}

export async function start() {
  if (running) return;
  running = true;
  try {
    await reload();
  } finally {
    open(); // even if the list failed: the stream may still come, and a reconnect reloads the list
  }
}

export function stop() {
  running = false;
  clearTimeout(retryTimer);
  if (source) source.close();
  source = null;
  transfers.clear();
  setConnected(false);
  wakelock.release('transfers');
}

// A phone that changes network (Wi-Fi to mobile and back) leaves a stream that looks open but is dead.
window.addEventListener('online', () => {
  if (running) restart();
});
