// The page: log in (or resume the session), then one view per #/route. /r/<code> is a share link.

import { logout, onUnauthorized, restoreSession } from './api.js';
import { h, replace, setText } from './dom.js';
import * as live from './live.js';
import * as uploads from './uploads.js';
import * as dashboard from './views/dashboard.js';
import * as devices from './views/devices.js';
import * as inbox from './views/inbox.js';
import * as login from './views/login.js';
import * as outbox from './views/outbox.js';
import * as receive from './views/receive.js';
import * as send from './views/send.js';
import * as settings from './views/settings.js';
import * as shares from './views/shares.js';
import { notify } from './ui.js';

const VIEWS = { dashboard, send, inbox, shares, outbox, devices, settings };
const TITLES = {
  dashboard: 'Dashboard', send: 'Send', inbox: 'Inbox', shares: 'Shares', outbox: 'Outbox', devices: 'Devices',
  settings: 'Settings',
};

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const logoutButton = document.getElementById('logout');
const connection = document.getElementById('connection');
let cleanup = () => {};
let loggedIn = false;

function mount(view, context = {}) {
  cleanup();
  replace(main);
  cleanup = view.render(main, context) || (() => {});
}

function routeName() {
  const name = window.location.hash.replace(/^#\/?/, '').split('/')[0];
  return Object.hasOwn(VIEWS, name) ? name : 'dashboard';
}

function show() {
  if (!loggedIn) return;
  const name = routeName();
  for (const link of nav.querySelectorAll('a')) {
    if (link.dataset.route === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${TITLES[name]} · doorstep`;
  mount(VIEWS[name]);
}

function showConnection(up) {
  connection.hidden = !loggedIn;
  connection.className = `connection ${up ? 'up' : 'down'}`;
  setText(connection, up ? 'live' : 'reconnecting…');
  connection.title = up ? 'Receiving live updates' : 'The live updates are reconnecting';
}

async function enter() {
  loggedIn = true;
  nav.hidden = false;
  logoutButton.hidden = false;
  showConnection(false);
  try {
    await live.start();
  } catch (error) {
    notify(error.message, 'error');
  }
  show();
}

function leave(message) {
  loggedIn = false;
  live.stop();
  nav.hidden = true;
  logoutButton.hidden = true;
  connection.hidden = true;
  document.title = 'Log in · doorstep';
  mount(login, { onLogin: () => enter() });
  if (message) notify(message, 'error');
}

onUnauthorized(() => {
  if (loggedIn) leave(uploads.busy() ? 'The session ended; uploads in progress stopped. Log in again.' : 'The session ended. Log in again.');
});

live.on('connection', showConnection);
window.addEventListener('hashchange', show);
logoutButton.addEventListener('click', async () => {
  try {
    await logout();
  } finally {
    leave();
  }
});
window.addEventListener('beforeunload', (event) => {
  if (uploads.busy()) event.preventDefault(); // leaving would stop the uploads
});

async function boot() {
  const share = window.location.pathname.match(/^\/r\/([^/]*)$/);
  let session = null;
  try {
    session = await restoreSession();
  } catch (error) {
    replace(main, h('p', { class: 'error-text', text: `The appliance does not answer: ${error.message}` }));
    return;
  }
  if (share) {
    document.title = 'A share for you · doorstep';
    mount(receive, { code: decodeURIComponent(share[1]), loggedIn: session !== null });
    return;
  }
  if (session) await enter();
  else leave();
}

boot();
