// A page's end of a WebRTC connection: the host of a share (the appliance, or a sending page) offers,
// the joiner answers; candidates are gathered before each description goes (no trickle, as the
// daemon does).

const MAX_SDP = 32 * 1024;
const GATHER_TIMEOUT_MS = 5_000;
const CONNECT_TIMEOUT_MS = 30_000;
const CHANNEL_LABEL = 'doorstep-transfer/1';

/** Messages of a data channel as an async queue: receive() resolves with the next ArrayBuffer. */
class MessageQueue {
  constructor(channel) {
    this.items = [];
    this.waiters = [];
    this.ended = null;
    channel.binaryType = 'arraybuffer';
    channel.onmessage = (event) => this.put(event.data);
    channel.onclose = () => this.end(new Error('the connection closed'));
  }

  put(data) {
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : new Uint8Array(data);
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(bytes);
    else this.items.push(bytes);
  }

  end(error) {
    if (this.ended) return;
    this.ended = error;
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
  }

  receive() {
    if (this.items.length) return Promise.resolve(this.items.shift());
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}

function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') resolve();
    });
    setTimeout(resolve, GATHER_TIMEOUT_MS); // send what we have
  });
}

async function relayedSdp(signal, session, kind) {
  for (;;) {
    const message = await signal.receive();
    if (message.type === 'left' && message.session === session) throw new Error('the other side left the session');
    if (message.type !== 'relay' || message.session !== session) continue;
    const { data } = message;
    if (!data || data.kind !== kind || typeof data.sdp !== 'string' || !data.sdp.startsWith('v=0')
      || data.sdp.length > MAX_SDP) {
      throw new Error(`the other side sent an invalid ${kind}`);
    }
    return data.sdp;
  }
}

function failedConnection(pc, reject) {
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === 'failed') reject(new Error('no network path to the other side worked'));
  };
}

/**
 * Offer a data channel in `session` (we host the share), with the session's ICE servers.
 * Resolves with {pc, channel, messages} once the channel is open.
 */
export async function offer(signal, session, iceServers) {
  const pc = new RTCPeerConnection({ iceServers: Array.isArray(iceServers) ? iceServers : [] });
  try {
    const channel = pc.createDataChannel(CHANNEL_LABEL, { ordered: true });
    const messages = new MessageQueue(channel);
    const opened = new Promise((resolve, reject) => {
      channel.onopen = resolve;
      failedConnection(pc, reject);
    });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    signal.send({ type: 'relay', session, data: { kind: 'offer', sdp: pc.localDescription.sdp } });
    const sdp = await withTimeout(relayedSdp(signal, session, 'answer'), CONNECT_TIMEOUT_MS, 'the receiver sent no answer');
    await pc.setRemoteDescription({ type: 'answer', sdp });
    await withTimeout(opened, CONNECT_TIMEOUT_MS, 'the connection to the receiver did not open');
    return { pc, channel, messages };
  } catch (error) {
    pc.close();
    throw error;
  }
}

/**
 * Answer the appliance's offer in `session` (joined on `signal`), with the session's ICE servers.
 * Resolves with {pc, channel, messages} once the data channel is open.
 */
export async function answer(signal, session, iceServers) {
  const pc = new RTCPeerConnection({ iceServers: Array.isArray(iceServers) ? iceServers : [] });
  try {
    const opened = new Promise((resolve, reject) => {
      pc.ondatachannel = ({ channel }) => {
        if (channel.label !== CHANNEL_LABEL) {
          reject(new Error('the sender opened an unexpected channel'));
          return;
        }
        const messages = new MessageQueue(channel);
        if (channel.readyState === 'open') resolve({ channel, messages });
        else channel.onopen = () => resolve({ channel, messages });
      };
      failedConnection(pc, reject);
    });
    const sdp = await withTimeout(relayedSdp(signal, session, 'offer'), CONNECT_TIMEOUT_MS, 'the sender sent no offer');
    await pc.setRemoteDescription({ type: 'offer', sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    signal.send({ type: 'relay', session, data: { kind: 'answer', sdp: pc.localDescription.sdp } });
    const { channel, messages } = await withTimeout(opened, CONNECT_TIMEOUT_MS, 'the connection to the sender did not open');
    return { pc, channel, messages };
  } catch (error) {
    pc.close();
    throw error;
  }
}
