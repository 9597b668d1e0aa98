// The control API, as this page uses it: a session cookie (HttpOnly, SameSite=Strict, set by
// POST /api/v1/login) plus the session's CSRF token, which every POST, PUT, PATCH and DELETE
// sends back as X-CSRF-Token. The token lives in this module's memory only; a reloaded page
// asks GET /api/v1/session for it again.

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
let csrf = null;
let unauthorizedHandler = () => {};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

/** Call `handler()` whenever the API answers 401 (the session ended). */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

export function csrfToken() {
  return csrf;
}

/** Headers an unsafe request needs (for XMLHttpRequest uploads). */
export function authHeaders() {
  return csrf ? { 'X-CSRF-Token': csrf } : {};
}

async function errorOf(response) {
  let code = `http_${response.status}`;
  let message = response.statusText || `HTTP ${response.status}`;
  try {
    const body = await response.json();
    if (body && typeof body.error === 'string') code = body.error;
    if (body && typeof body.message === 'string') message = body.message;
    else if (body && typeof body.detail === 'string') message = body.detail;
  } catch {
    // not JSON: keep the status text
  }
  return new ApiError(response.status, code, message);
}

/** The parsed body of an XMLHttpRequest that failed (for uploads). */
export function errorOfXhr(xhr) {
  let code = `http_${xhr.status}`;
  let message = xhr.statusText || (xhr.status ? `HTTP ${xhr.status}` : 'the connection failed');
  try {
    const body = JSON.parse(xhr.responseText);
    if (body && typeof body.error === 'string') code = body.error;
    if (body && typeof body.message === 'string') message = body.message;
  } catch {
    // not JSON
  }
  if (xhr.status === 401) unauthorizedHandler();
  return new ApiError(xhr.status, code, message);
}

/**
 * api('GET', '/api/v1/transfers'): the JSON answer (null for 204). `json` is sent as a JSON body,
 * `body` as is. Throws ApiError for any status >= 400.
 */
export async function api(method, path, { json, body, headers = {}, signal } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json', ...headers }, signal };
  if (json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  if (UNSAFE.has(method) && csrf) init.headers['X-CSRF-Token'] = csrf;
  const response = await fetch(path, init);
  if (response.status === 401 && path !== '/api/v1/login') unauthorizedHandler();
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  return type.includes('json') ? response.json() : response.text();
}

/** Log in with the API token or the web password; remembers the CSRF token. */
export async function login(credentials) {
  const session = await api('POST', '/api/v1/login', { json: credentials });
  csrf = session.csrf;
  return session;
}

/** The current session (its CSRF token), or null when not logged in. */
export async function restoreSession() {
  const response = await fetch('/api/v1/session', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  if (response.status === 401) return null;
  if (!response.ok) throw await errorOf(response);
  const session = await response.json();
  csrf = session.csrf;
  return session;
}

export async function logout() {
  try {
    await api('POST', '/api/v1/logout');
  } finally {
    csrf = null;
  }
}
