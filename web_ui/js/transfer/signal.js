// A signaling client for a page (docs/signaling.md): requests with ids and their replies, and a
// queue of what the server sends unasked (relay, left). One WebSocket, closed by close().

const OPEN_TIMEOUT_MS = 10_000;

export class SignalError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/**
 * The signaling URL for this page: the appliance's (from /api/v1/health), except that a loopback
 * host is replaced by the page's own when the page was opened from another address (the LAN).
 */
export function signalUrlFor(advertised, location = window.location) {
  const url = new URL(advertised);
  const loopback = ['127.0.0.1', 'localhost', '[::1]'];
  if (loopback.includes(url.hostname) && !loopback.includes(location.hostname)) url.hostname = location.hostname;
  if (location.protocol === 'https:' && url.protocol === 'ws:') url.protocol = 'wss:';
  return url.toString();
}

export class Signal {
  constructor(socket) {
    this.socket = socket;
    this.nextId = 1;
    this.pending = new Map();
    this.queue = [];
    this.waiters = [];
    this.closed = null;
    socket.onmessage = (event) => this.onMessage(event.data);
    socket.onclose = () => this.fail(new SignalError('closed', 'the signaling connection closed'));
  }

  /** Connect to `url`; rejects with SignalError when it cannot. */
  static open(url) {
    return new Promise((resolve, reject) => {
      let socket;
      try {
        socket = new WebSocket(url);
      } catch (error) {
        reject(new SignalError('unreachable', `cannot reach the appliance's signaling at ${url}: ${error.message}`));
        return;
      }
      const timer = setTimeout(() => {
        socket.close();
        reject(new SignalError('unreachable', 'the appliance\u2019s signaling did not answer'));
      }, OPEN_TIMEOUT_MS);
      socket.onopen = () => {
        clearTimeout(timer);
        resolve(new Signal(socket));
      };
      socket.onerror = () => {
        clearTimeout(timer);
        reject(new SignalError('unreachable', 'the appliance\u2019s signaling refused the connection'));
      };
    });
  }

  onMessage(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return; // the server sends JSON objects only; anything else is ignored
    }
    if (message === null || typeof message !== 'object' || typeof message.type !== 'string') return;
    if (message.id !== undefined && this.pending.has(message.id)) {
      const { resolve, reject } = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.type === 'error') reject(new SignalError(String(message.code), String(message.message)));
      else resolve(message);
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(message);
    else this.queue.push(message);
  }

  fail(error) {
    if (this.closed) return;
    this.closed = error;
    for (const { reject } of this.pending.values()) reject(error);
    this.pending.clear();
    for (const { reject } of this.waiters.splice(0)) reject(error);
  }

  /** Send `message` with a fresh id; resolves with the reply, rejects with SignalError. */
  request(message) {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ ...message, id }));
    });
  }

  /** Send `message` expecting no reply (relay). */
  send(message) {
    if (this.closed) throw this.closed;
    this.socket.send(JSON.stringify(message));
  }

  /** The next message the server sent unasked. */
  receive() {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  close() {
    this.fail(new SignalError('closed', 'the signaling connection closed'));
    this.socket.close();
  }
}
