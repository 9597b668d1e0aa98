// Receive a share by code in this page: join on the appliance's signaling, answer its WebRTC offer,
// authenticate in origin mode (the page trusts the appliance that served it; docs/protocol.md
// section 0), then run the receiving side of the transfer protocol (docs/protocol.md sections 2-4):
// every byte is hashed (SHA-256, @noble/hashes from the npm registry) on its way to the sink, and a
// file counts only when its digest matches the offer.

import { CONTROL, FrameDecoder, ProtocolError, controlFrame } from './frames.js';
import { answer } from './peer.js';
import { Signal } from './signal.js';
import { hex, loadSha256 } from './hashing.js';

const WINDOW = 8 * 1024 * 1024;
const ACK_EVERY = 1024 * 1024;
const MAX_FILES = 100_000;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export class ReceiveError extends Error {}

/** The offer's files, checked: [{path, size, sha256}]. Throws ProtocolError. */
export function checkedFiles(offer) {
  const { files } = offer;
  if (!Array.isArray(files) || files.length < 1 || files.length > MAX_FILES) {
    throw new ProtocolError('bad_message', 'an offer without a valid file list');
  }
  return files.map((file) => {
    const ok = file && typeof file.path === 'string' && file.path.length >= 1 && file.path.length <= 4096
      && Number.isSafeInteger(file.size) && file.size >= 0 && typeof file.sha256 === 'string' && SHA256_HEX.test(file.sha256);
    if (!ok) throw new ProtocolError('bad_message', 'an offer with an invalid file entry');
    return { path: file.path, size: file.size, sha256: file.sha256 };
  });
}

/** Throw for a control message that was not expected here: the appliance's error or cancel, or ours. */
function refuse(message) {
  if (message.type === 'auth_failed') throw new ReceiveError(`The appliance refused this page: ${String(message.reason)}`);
  if (message.type === 'error') throw new ReceiveError(`The appliance failed: ${String(message.message)}`);
  if (message.type === 'cancel') throw new ReceiveError(`The appliance cancelled: ${String(message.reason)}`);
  throw new ProtocolError('unexpected_message', `unexpected ${String(message.type).slice(0, 40)}`);
}

/** One receiving session over an open data channel (`messages`: its async message queue). */
class Session {
  constructor(channel, messages, sha256) {
    this.channel = channel;
    this.messages = messages;
    this.decoder = new FrameDecoder();
    this.sha256 = sha256;
  }

  send(message) {
    if (this.channel.readyState !== 'open') throw new ReceiveError('the connection to the appliance closed');
    this.channel.send(controlFrame(message));
  }

  async nextFrame() {
    for (;;) {
      const frame = this.decoder.next();
      if (frame) return frame;
      this.decoder.push(await this.messages.receive());
    }
  }

  async control(...types) {
    const frame = await this.nextFrame();
    if (frame.kind !== CONTROL) throw new ProtocolError('unexpected_message', 'data before the transfer started');
    const { message } = frame;
    if (!types.includes(message.type)) refuse(message);
    return message;
  }

  async authenticate() {
    this.send({ type: 'auth_hello', version: 1, mode: 'origin' });
    const hello = await this.control('auth_hello');
    if (hello.mode !== 'origin' || hello.version !== 1) throw new ProtocolError('auth_mode', 'the appliance answered in another mode');
    if (this.decoder.buffered) throw new ProtocolError('bad_frame', 'bytes after the authentication step');
    this.decoder = new FrameDecoder(); // the transfer protocol starts on a fresh decoder
  }

  async offer() {
    this.send({ type: 'hello', version: 1 });
    const hello = await this.control('hello');
    if (hello.version !== 1 || hello.sealed === true) throw new ProtocolError('version', 'the appliance speaks another protocol version');
    const offer = await this.control('offer');
    return checkedFiles(offer);
  }

  /** Accept and receive every file into `sink`; `progress(bytesDone)` after each write. */
  async receive(files, sink, progress) {
    this.send({ type: 'accept', offsets: files.map(() => 0), window: WINDOW });
    let done = 0;
    for (let index = 0; index < files.length; index += 1) {
      const file = files[index];
      const hasher = this.sha256.create();
      await sink.open(index, file);
      let offset = 0;
      let acked = 0;
      while (offset < file.size) {
        const frame = await this.nextFrame();
        if (frame.kind === CONTROL) refuse(frame.message);
        if (frame.file !== index) throw new ProtocolError('bad_file', `data for file ${frame.file} while receiving ${index}`);
        if (frame.offset !== offset || offset + frame.payload.length > file.size) {
          throw new ProtocolError('bad_offset', `data at ${frame.offset} of file ${index}, expected ${offset}`);
        }
        hasher.update(frame.payload);
        await sink.write(index, frame.payload);
        offset += frame.payload.length;
        done += frame.payload.length;
        progress(done);
        if (offset - acked >= ACK_EVERY || offset === file.size) {
          this.send({ type: 'ack', file: index, offset });
          acked = offset;
        }
      }
      if (hex(hasher.digest()) !== file.sha256) {
        this.send({ type: 'error', code: 'hash_mismatch', message: `file ${index} does not match its SHA-256` });
        throw new ReceiveError(`${file.path} arrived damaged (its SHA-256 does not match); nothing was kept.`);
      }
      await sink.close(index);
      this.send({ type: 'verified', file: index });
    }
    this.send({ type: 'done' });
  }

  /** Tell the appliance why we stop (best effort). */
  abort(error) {
    try {
      const code = error instanceof ProtocolError ? error.code : null;
      if (code) this.send({ type: 'error', code, message: String(error.message).slice(0, 1000) });
      else this.send({ type: 'cancel', reason: String(error.message || 'cancelled').slice(0, 1000) });
    } catch {
      // the channel is gone already
    }
  }
}

/**
 * Receive the share behind `code` from the appliance whose signaling is at `signalUrl`.
 * `choose(files)` resolves with a sink ({open, write, close, finish, abort}) once the person
 * decided where the files go (or rejects to refuse); `onStatus(text)` and `onProgress(done, total)`
 * report. Resolves with the files, verified; rejects with ReceiveError (or another Error).
 */
export async function receiveShare({ code, signalUrl, choose, onStatus = () => {}, onProgress = () => {} }) {
  const sha256 = await loadSha256();
  onStatus('Connecting to the appliance…');
  const signal = await Signal.open(signalUrl);
  let pc = null;
  let session = null;
  let sink = null;
  try {
    let joined;
    try {
      joined = await signal.request({ type: 'join', code });
    } catch (error) {
      if (error.code === 'join_failed') throw new ReceiveError('This code does not work: it is wrong, used, or expired.');
      throw error;
    }
    onStatus('Connecting to the sender…');
    const connection = await answer(signal, joined.session, joined.ice);
    pc = connection.pc;
    session = new Session(connection.channel, connection.messages, sha256);
    await session.authenticate();
    const files = await session.offer();
    sink = await choose(files);
    const total = files.reduce((sum, f) => sum + f.size, 0);
    onStatus('Receiving…');
    await session.receive(files, sink, (done) => onProgress(done, total));
    const result = await sink.finish();
    await drained(connection.channel);
    return { files, result };
  } catch (error) {
    if (session) session.abort(error);
    if (sink) await sink.abort().catch(() => {});
    throw error;
  } finally {
    signal.close();
    if (pc) setTimeout(() => pc.close(), 500); // let the last acks go out
  }
}

function drained(channel) {
  return new Promise((resolve) => {
    const check = () => (channel.bufferedAmount === 0 || channel.readyState !== 'open' ? resolve() : setTimeout(check, 20));
    check();
  });
}
