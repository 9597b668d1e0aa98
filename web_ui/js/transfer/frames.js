// The transfer protocol's framing (docs/protocol.md, section 1) for a page: CONTROL frames carry one
// JSON object, DATA frames (file, offset, payload). The decoder takes any split of the byte stream
// and checks every limit before it trusts a length. Pages both receive (from the appliance or another
// page) and send (to another page). Sealed DATA frames are refused: a page never
// asks for them (the origin authentication mode has no shared key).

export const CONTROL = 0x01;
export const DATA = 0x02;
const DATA_HEADER = 12;
const MAX_CONTROL_BODY = 1 << 20;
const MAX_DATA_PAYLOAD = 1 << 20;
const MAX_FRAME = 1 + DATA_HEADER + MAX_DATA_PAYLOAD;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export class ProtocolError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** The CONTROL frame carrying `message` (a plain object). */
export function controlFrame(message) {
  const body = encoder.encode(JSON.stringify(message));
  const frame = new Uint8Array(5 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length + 1);
  frame[4] = CONTROL;
  frame.set(body, 5);
  return frame;
}

/** The DATA frame carrying `payload` (a Uint8Array) at `offset` of file `file`. */
export function dataFrame(file, offset, payload) {
  const frame = new Uint8Array(5 + DATA_HEADER + payload.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, 1 + DATA_HEADER + payload.length);
  frame[4] = DATA;
  view.setUint32(5, file);
  view.setBigUint64(9, BigInt(offset));
  frame.set(payload, 5 + DATA_HEADER);
  return frame;
}

/** Frames out of a byte stream: push(bytes), then next() until it returns null. */
export class FrameDecoder {
  constructor() {
    this.buffer = new Uint8Array(0);
  }

  push(bytes) {
    if (this.buffer.length === 0) {
      this.buffer = bytes;
      return;
    }
    const joined = new Uint8Array(this.buffer.length + bytes.length);
    joined.set(this.buffer);
    joined.set(bytes, this.buffer.length);
    this.buffer = joined;
  }

  get buffered() {
    return this.buffer.length;
  }

  /**
   * The next whole frame: {kind: CONTROL, message} or {kind: DATA, file, offset, payload}; null
   * when more bytes are needed. Throws ProtocolError on a malformed frame.
   */
  next() {
    const buf = this.buffer;
    if (buf.length < 4) return null;
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const length = view.getUint32(0);
    if (length === 0) throw new ProtocolError('frame_empty', 'an empty frame');
    if (length > MAX_FRAME) throw new ProtocolError('frame_too_large', `a frame of ${length} bytes`);
    if (buf.length >= 5 && buf[4] !== CONTROL && buf[4] !== DATA) {
      throw new ProtocolError('frame_kind', `frame kind ${buf[4]} (sealed frames are not for pages)`);
    }
    if (buf.length < 4 + length) return null;
    const body = buf.subarray(5, 4 + length);
    this.buffer = buf.subarray(4 + length);
    if (buf[4] === CONTROL) return { kind: CONTROL, message: parseControl(body) };
    if (body.length <= DATA_HEADER) throw new ProtocolError('frame_malformed', 'a DATA frame without payload');
    const header = new DataView(body.buffer, body.byteOffset, DATA_HEADER);
    const offset = header.getBigUint64(4);
    if (offset > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError('bad_offset', 'an offset past 2^53');
    return { kind: DATA, file: header.getUint32(0), offset: Number(offset), payload: body.subarray(DATA_HEADER) };
  }
}

function parseControl(body) {
  if (body.length > MAX_CONTROL_BODY) throw new ProtocolError('frame_too_large', 'a control message over 1 MiB');
  let message;
  try {
    message = JSON.parse(decoder.decode(body));
  } catch {
    throw new ProtocolError('bad_json', 'a control message that is not UTF-8 JSON');
  }
  if (message === null || typeof message !== 'object' || Array.isArray(message) || typeof message.type !== 'string') {
    throw new ProtocolError('bad_json', 'a control message that is not a JSON object with a type');
  }
  return message;
}
