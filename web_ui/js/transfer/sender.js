// Send files from this page to another browser, introduced by the appliance's signaling: the page
// hosts a share with a code on the appliance's signaling server, waits for one receiver (a page
// on /r/<code>, which needs no login), offers it a data channel with the session's ICE servers
// (the appliance's STUN/TURN), accepts it in origin mode (both pages trust the appliance), and
// runs the sending side of the transfer protocol (docs/protocol.md sections 2-4) with the
// receiver's window, acks and per-file SHA-256 verification.

import { CONTROL, FrameDecoder, ProtocolError, controlFrame, dataFrame } from './frames.js';
import { hashBlob, loadSha256 } from './hashing.js';
import { offer } from './peer.js';
import { Signal } from './signal.js';

const HIGH_WATER = 4 * 1024 * 1024;
const MAX_MESSAGE = 256 * 1024;
const DATA_FRAME_OVERHEAD = 17;

export class SendError extends Error {}

function randomHex(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
}

function drainedBelow(channel, level) {
  if (channel.bufferedAmount <= level) return Promise.resolve();
  channel.bufferedAmountLowThreshold = level;
  return new Promise((resolve) => {
    const done = () => {
      channel.removeEventListener('bufferedamountlow', done);
      channel.removeEventListener('close', done);
      resolve();
    };
    channel.addEventListener('bufferedamountlow', done);
    channel.addEventListener('close', done);
  });
}

async function nextPeer(signal) {
  for (;;) {
    const message = await signal.receive();
    if (message.type === 'peer') return message;
  }
}

class SendSession {
  constructor(pc, channel, messages, shareId) {
    this.pc = pc;
    this.channel = channel;
    this.messages = messages;
    this.shareId = shareId;
    this.decoder = new FrameDecoder();
  }

  send(bytes) {
    if (this.channel.readyState !== 'open') throw new SendError('the connection to the receiver closed');
    this.channel.send(bytes);
  }

  async control() {
    for (;;) {
      const frame = this.decoder.next();
      if (frame) {
        if (frame.kind !== CONTROL) throw new ProtocolError('unexpected_message', 'the receiver sent data');
        const { message } = frame;
        if (message.type === 'error') throw new SendError(`The receiver failed: ${String(message.message)}`);
        if (message.type === 'cancel') throw new SendError(`The receiver cancelled: ${String(message.reason)}`);
        if (message.type === 'reject') throw new SendError(`The receiver refused: ${String(message.reason)}`);
        return message;
      }
      this.decoder.push(await this.messages.receive());
    }
  }

  async expect(type) {
    const message = await this.control();
    if (message.type !== type) throw new ProtocolError('unexpected_message', `expected ${type}, got ${String(message.type).slice(0, 40)}`);
    return message;
  }

  /** Responder of the authentication step: origin mode only (a page has no other secret). */
  async authenticate() {
    const hello = await this.expect('auth_hello');
    if (hello.version !== 1 || hello.mode !== 'origin') {
      this.send(controlFrame({ type: 'auth_failed', code: 'unsupported_mode', reason: 'a page accepts origin mode only' }));
      throw new SendError('The receiver is not a page of this appliance.');
    }
    this.send(controlFrame({ type: 'auth_hello', version: 1, mode: 'origin' }));
    this.decoder = new FrameDecoder();
  }

  async run(entries, blobs, progress) {
    const n = entries.length;
    this.send(controlFrame({ type: 'hello', version: 1 }));
    this.send(controlFrame({ type: 'offer', transfer_id: this.shareId, files: entries }));
    const hello = await this.expect('hello');
    if (hello.version !== 1 || hello.sealed === true) throw new ProtocolError('version', 'the receiver speaks another version');
    const accept = await this.expect('accept');
    const { offsets, window } = accept;
    if (!Array.isArray(offsets) || offsets.length !== n || !Number.isSafeInteger(window) || window < 65536
      || offsets.some((o, i) => !Number.isSafeInteger(o) || o < 0 || o > entries[i].size)) {
      throw new ProtocolError('bad_message', 'an invalid accept');
    }
    this.acked = offsets.slice();
    this.sent = offsets.slice();
    this.verified = new Array(n).fill(false);
    this.inFlight = 0;
    this.done = false;
    const total = entries.reduce((sum, e) => sum + e.size, 0);
    this.progress = () => progress(this.acked.reduce((a, b) => a + b, 0), total);
    const chunk = Math.min(this.pc.sctp?.maxMessageSize || 65536, MAX_MESSAGE) - DATA_FRAME_OVERHEAD;
    for (let i = 0; i < n; i += 1) {
      for (let offset = offsets[i]; offset < entries[i].size;) {
        const length = Math.min(chunk, entries[i].size - offset);
        while (this.inFlight + length > window) await this.handle(await this.control());
        await drainedBelow(this.channel, HIGH_WATER);
        const payload = new Uint8Array(await blobs[i].slice(offset, offset + length).arrayBuffer());
        this.send(dataFrame(i, offset, payload));
        offset += length;
        this.sent[i] = offset;
        this.inFlight += length;
      }
    }
    while (!this.done) await this.handle(await this.control());
  }

  handle(message) {
    const n = this.acked.length;
    if (message.type === 'ack') {
      const { file, offset } = message;
      if (!Number.isSafeInteger(file) || file < 0 || file >= n || !Number.isSafeInteger(offset)
        || !(this.acked[file] < offset && offset <= this.sent[file])) {
        throw new ProtocolError('bad_ack', 'an ack for bytes not sent');
      }
      this.inFlight -= offset - this.acked[file];
      this.acked[file] = offset;
      this.progress();
    } else if (message.type === 'verified') {
      const { file } = message;
      if (!Number.isSafeInteger(file) || file < 0 || file >= n || this.verified[file] || this.acked[file] !== this.sent[file]) {
        throw new ProtocolError('bad_verified', 'verified for a file not fully acked');
      }
      this.verified[file] = true;
    } else if (message.type === 'done') {
      if (!this.verified.every(Boolean)) throw new ProtocolError('bad_done', 'done before every file was verified');
      this.done = true;
    } else {
      throw new ProtocolError('unexpected_message', `unexpected ${String(message.type).slice(0, 40)}`);
    }
  }

  abort(error) {
    try {
      if (error instanceof ProtocolError) this.send(controlFrame({ type: 'error', code: error.code, message: error.message.slice(0, 1000) }));
      else this.send(controlFrame({ type: 'cancel', reason: String(error.message || 'cancelled').slice(0, 1000) }));
    } catch {
      // gone already
    }
  }
}

/**
 * Hash `files` ([{file, path}]), host them with a code, and send them to the one page that joins.
 * `onCode(code, expiresAt)` once the code exists; `onStatus(text)`; `onProgress(acked, total)`.
 * `signal` (an AbortSignal) stops waiting. Resolves once the receiver verified every file.
 */
export async function sendToBrowser({ files, signalUrl, onCode, onStatus = () => {}, onProgress = () => {}, abort }) {
  const sha256 = await loadSha256();
  const entries = [];
  let hashedBefore = 0;
  const size = files.reduce((sum, f) => sum + f.file.size, 0);
  for (const { file, path } of files) {
    onStatus(`Preparing: hashing ${path}…`);
    const digest = await hashBlob(sha256, file, (read) => onProgress(hashedBefore + read, size, 'hashing'));
    hashedBefore += file.size;
    entries.push({ path, size: file.size, sha256: digest });
  }
  const signal = await Signal.open(signalUrl);
  let session = null;
  let pc = null;
  const stop = () => signal.close();
  abort?.addEventListener('abort', stop);
  try {
    const shareId = randomHex(16);
    const hosted = await signal.request({ type: 'host', share: shareId, host_key: randomHex(24), code: true });
    onCode(hosted.code, hosted.expires_at);
    onStatus('Waiting for the receiver to open the link or enter the code…');
    const peer = await nextPeer(signal);
    onStatus('Connecting to the receiver…');
    const connection = await offer(signal, peer.session, peer.ice);
    pc = connection.pc;
    session = new SendSession(pc, connection.channel, connection.messages, shareId);
    await session.authenticate();
    onStatus('Sending…');
    await session.run(entries, files.map((f) => f.file), (acked, total) => onProgress(acked, total, 'sending'));
    return entries;
  } catch (error) {
    if (session) session.abort(error);
    throw error;
  } finally {
    abort?.removeEventListener('abort', stop);
    signal.close();
    if (pc) setTimeout(() => pc.close(), 500);
  }
}
