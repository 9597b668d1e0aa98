// "Send to another browser": the files go page to page over WebRTC; the appliance only introduces
// the two (signaling, its STUN/TURN) and never holds a byte. The receiver opens the link or types
// the code on the appliance's page, with no login.

import { api } from '../api.js';
import { h, replace, setText } from '../dom.js';
import * as format from '../format.js';
import { sendToBrowser } from '../transfer/sender.js';
import { signalUrlFor } from '../transfer/signal.js';
import { RateMeter } from '../uploads.js';
import { progressText, section } from '../ui.js';
import * as wakelock from '../wakelock.js';

export function browserSendSection() {
  const input = h('input', { type: 'file', id: 'p2p-files', multiple: true, class: 'visually-hidden', tabindex: '-1' });
  const pick = h('button', { type: 'button', text: 'Choose files to send', onclick: () => input.click() });
  const status = h('p', { id: 'p2p-status', role: 'status' });
  const code = h('div', { id: 'p2p-code' });
  const bar = h('progress', { max: 1, value: 0, hidden: true });
  const numbers = h('p', { class: 'numbers muted' });
  let controller = null;
  const stopButton = h('button', { type: 'button', class: 'quiet', text: 'Stop', hidden: true,
    onclick: () => controller?.abort() });

  input.addEventListener('change', async () => {
    const files = [...input.files].map((file) => ({ file, path: file.name }));
    input.value = '';
    if (!files.length) return;
    pick.disabled = true;
    stopButton.hidden = false;
    controller = new AbortController();
    const meter = new RateMeter();
    status.dataset.state = 'working';
    wakelock.hold('browser-send');
    try {
      const health = await api('GET', '/api/v1/health');
      await sendToBrowser({
        files,
        signalUrl: signalUrlFor(health.signal),
        abort: controller.signal,
        onCode: (value, expiresAt) => {
          const link = `${window.location.origin}/r/${value}`;
          replace(code,
            h('p', { class: 'code', text: format.code(value), dataset: { code: value } }),
            h('p', {}, 'Link: ', h('a', { href: link, text: link })),
            expiresAt ? h('p', { class: 'muted', text: `Works once, until ${format.when(expiresAt)}.` }) : null);
        },
        onStatus: (text) => setText(status, text),
        onProgress: (done, total, phase) => {
          bar.hidden = false;
          bar.value = total ? done / total : 1;
          if (phase === 'sending') meter.sample(done);
          const rate = phase === 'sending' ? meter.rate() : 0;
          setText(numbers, progressText(done, total, rate, rate ? (total - done) / rate : null));
        },
      });
      status.dataset.state = 'done';
      setText(status, `Sent ${format.plural(files.length, 'file', 'files')}; the receiver verified every SHA-256.`);
    } catch (error) {
      status.dataset.state = 'failed';
      setText(status, error.message || String(error));
    } finally {
      wakelock.release('browser-send');
      pick.disabled = false;
      stopButton.hidden = true;
      replace(code);
    }
  });
  return section('Send to another browser',
    h('p', { class: 'muted', text: 'The files go straight from this page to the other browser; the appliance only '
      + 'introduces the two. Keep this page open until the receiver has them.' }),
    h('div', { class: 'actions' }, pick, stopButton), input, code, status, bar, numbers);
}
