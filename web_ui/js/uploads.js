// Sending files to the appliance: each file is one streaming upload,
//   PUT /api/v1/inbox/<its path>   (raw body, Content-Length set by the browser)
// sent with XMLHttpRequest, which reads the file from disk as it goes (never all in memory) and
// reports upload progress (fetch() cannot, over HTTP/1.1). The daemon writes the bytes into a
// partial file, verifies them and only then gives them their name in the inbox.
//
// Where the page can hash (crypto.subtle exists in secure contexts only: https, or localhost),
// files up to HASH_LIMIT are hashed first and the digest sent as X-Content-SHA256, so the daemon
// checks the bytes end to end. Otherwise the daemon's own digest (of what arrived, re-read from
// its disk) is shown. The queue survives moving between the page's views; uploads run one at a
// time, and the screen is kept on while they do.

import { authHeaders, errorOfXhr } from './api.js';
import { urlPath } from './format.js';
import * as wakelock from './wakelock.js';

const HASH_LIMIT = 64 * 1024 * 1024;
/** Uploads cut by the network are started again this many times before they count as failed. */
const RETRIES = 5;
const RATE_WINDOW_MS = 3000;

let nextId = 1;
export const queue = [];
const listeners = new Set();
let running = false;

/** on(fn): fn(item or null) whenever the queue or an item changes; returns a function that stops it. */
export function on(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function changed(item = null) {
  for (const fn of [...listeners]) fn(item);
}

/** A meter for speed (bytes/s) over the last few seconds. */
export class RateMeter {
  constructor(windowMs = RATE_WINDOW_MS) {
    this.windowMs = windowMs;
    this.samples = [];
  }

  sample(total, now = performance.now()) {
    this.samples.push([now, total]);
    while (this.samples.length > 2 && this.samples[1][0] <= now - this.windowMs) this.samples.shift();
  }

  rate(now = performance.now()) {
    if (this.samples.length < 2) return 0;
    const [t0, b0] = this.samples[0];
    const [, b1] = this.samples[this.samples.length - 1];
    return now > t0 ? ((b1 - b0) * 1000) / (now - t0) : 0;
  }
}

/**
 * Send `body` with XMLHttpRequest; resolves with the parsed JSON answer, rejects with an ApiError.
 * `onProgress(sentBytes)` follows the upload; `track(xhr)` receives the request (to abort it).
 */
export function send(method, url, body, { headers = {}, onProgress, track } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.withCredentials = true;
    xhr.setRequestHeader('Accept', 'application/json');
    for (const [name, value] of Object.entries({ ...authHeaders(), ...headers })) xhr.setRequestHeader(name, value);
    if (onProgress) xhr.upload.addEventListener('progress', (event) => onProgress(event.loaded));
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          resolve(null);
        }
      } else reject(errorOfXhr(xhr));
    });
    xhr.addEventListener('error', () => reject(errorOfXhr(xhr)));
    xhr.addEventListener('abort', () => reject(Object.assign(new Error('cancelled'), { code: 'aborted' })));
    if (track) track(xhr);
    xhr.send(body);
  });
}

async function sha256Hex(file) {
  if (!(globalThis.crypto && crypto.subtle) || file.size > HASH_LIMIT) return null;
  const digest = await crypto.subtle.digest('SHA-256', await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Queue files: [{file, path}] where path is where it goes in the inbox ('/'-separated, e.g.
 * the folder-relative path of a picked folder).
 */
export function enqueue(entries) {
  for (const { file, path } of entries) {
    queue.push({
      id: nextId++, file, path: path || file.name, size: file.size, sent: 0, state: 'queued',
      speed: 0, eta: null, error: null, result: null, endToEnd: false, xhr: null, attempts: 0,
    });
  }
  changed();
  run();
}

export function cancel(item) {
  if (item.state === 'queued' || item.state === 'hashing' || item.state === 'waiting') {
    item.state = 'cancelled';
    changed(item);
  } else if (item.xhr) {
    item.xhr.abort();
  }
}

export function clearFinished() {
  for (let i = queue.length - 1; i >= 0; i -= 1) {
    if (['done', 'failed', 'cancelled'].includes(queue[i].state)) queue.splice(i, 1);
  }
  changed();
}

export function busy() {
  return running;
}

/**
 * Queue `item` again once the browser says it is back online, or after a backoff (1 s, doubling,
 * at most 30 s), whichever comes first. The daemon kept nothing of the cut upload, so it starts over.
 */
function retryLater(item) {
  const go = () => {
    window.removeEventListener('online', go);
    clearTimeout(timer);
    if (item.state !== 'waiting') return; // cancelled meanwhile
    item.state = 'queued';
    item.sent = 0;
    changed(item);
    run();
  };
  const timer = setTimeout(go, Math.min(30_000, 1000 * 2 ** (item.attempts - 1)));
  window.addEventListener('online', go);
}

async function run() {
  if (running) return;
  running = true;
  wakelock.hold('uploads');
  try {
    for (let item = next(); item; item = next()) await upload(item);
  } finally {
    running = false;
    wakelock.release('uploads');
    changed();
  }
}

function next() {
  return queue.find((item) => item.state === 'queued');
}

async function upload(item) {
  item.state = 'hashing';
  changed(item);
  try {
    const digest = await sha256Hex(item.file);
    if (item.state === 'cancelled') return;
    item.state = 'sending';
    item.endToEnd = digest !== null;
    const meter = new RateMeter();
    meter.sample(0);
    changed(item);
    const headers = { 'Content-Type': 'application/octet-stream' };
    if (digest) headers['X-Content-SHA256'] = digest;
    const transfer = await send('PUT', `/api/v1/inbox/${urlPath(item.path)}`, item.file, {
      headers,
      track: (xhr) => {
        item.xhr = xhr;
      },
      onProgress: (sent) => {
        item.sent = sent;
        meter.sample(sent);
        item.speed = meter.rate();
        item.eta = item.speed > 0 ? (item.size - sent) / item.speed : null;
        if (sent >= item.size) item.state = 'verifying';
        changed(item);
      },
    });
    item.sent = item.size;
    item.state = 'done';
    item.result = transfer && transfer.files && transfer.files[0] ? transfer.files[0] : null;
  } catch (error) {
    if (error.code === 'aborted') {
      item.state = 'cancelled';
      item.error = null;
    } else if (error.status === 0 && item.attempts < RETRIES) {
      item.attempts += 1; // the network went away (a phone changed networks, say): start over later
      item.state = 'waiting';
      item.error = `The connection dropped; trying again (${item.attempts} of ${RETRIES}).`;
      retryLater(item);
    } else {
      item.state = 'failed';
      item.error = error.message;
    }
  } finally {
    item.xhr = null;
    item.speed = 0;
    item.eta = null;
    changed(item);
  }
}

/** Files of a drop: folders are walked (webkitGetAsEntry) so their files keep their paths. */
export async function filesOfDrop(dataTransfer) {
  const entries = [...dataTransfer.items]
    .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
    .filter(Boolean);
  if (!entries.length) return [...dataTransfer.files].map((file) => ({ file, path: file.name }));
  const out = [];
  async function walk(entry, prefix) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      out.push({ file, path: prefix + entry.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  }
  for (const entry of entries) await walk(entry, '');
  return out;
}
