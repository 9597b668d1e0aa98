// The share link (/r/<code>): who opens it learns how to receive the share. Receiving in this
// browser (WebRTC, by code) is not built yet; the owner, logged in, can fetch it into the
// appliance's inbox.

import { api } from '../api.js';
import { h } from '../dom.js';
import * as format from '../format.js';
import { attempt, section } from '../ui.js';

export function render(main, { code, loggedIn }) {
  const valid = /^\d{6}$/.test(code);
  if (!valid) {
    main.append(h('h1', { text: 'Not a share link' }),
      h('p', { text: 'A share link ends with a 6-digit code.' }), h('p', {}, h('a', { href: '/', text: 'Go to the appliance' })));
    return () => {};
  }
  const command = `doorstep receive ${code}`;
  const parts = [
    h('p', { text: 'Someone shared files with you through this appliance. The code works once and expires a few minutes '
      + 'after it was made.' }),
    h('p', { class: 'code', text: format.code(code) }),
    h('p', { text: 'On a computer with doorstep installed, run:' }),
    h('pre', {}, h('code', { text: command })),
    h('p', { class: 'muted', text: 'Receiving directly in this browser is not available yet.' }),
  ];
  if (loggedIn) {
    parts.push(h('div', { class: 'actions' }, h('button', {
      type: 'button', class: 'primary', text: 'Fetch into this appliance\u2019s inbox',
      onclick: async () => {
        const transfer = await attempt(() => api('POST', '/api/v1/receive', { json: { code } }));
        if (transfer) window.location.assign('/#/dashboard');
      },
    })));
  } else {
    parts.push(h('p', {}, h('a', { href: '/', text: 'Log in to manage this appliance' })));
  }
  main.append(h('h1', { text: 'A share for you' }), section('Receive', ...parts));
  return () => {};
}
