// Building the DOM from data. The one rule of this UI: a string from the API (names, paths,
// errors, anything a peer may have chosen) only ever becomes a text node or an attribute value.
// Nothing here, and nothing in the views, assigns innerHTML, outerHTML or insertAdjacentHTML.

const PROPERTIES = new Set(['value', 'checked', 'disabled', 'hidden', 'multiple', 'selected', 'required',
  'readOnly', 'open', 'max', 'min']);
const URL_ATTRIBUTES = new Set(['href', 'src', 'action', 'formaction']);

/** Whether `value` is a URL this page may link to: same origin, http(s) or blob. */
export function safeUrl(value) {
  try {
    const url = new URL(String(value), window.location.href);
    return ['http:', 'https:', 'blob:'].includes(url.protocol);
  } catch {
    return false;
  }
}

/**
 * h('a', {href, class, text, onclick}, ...children): an element. `text` sets textContent;
 * `on<event>` functions become listeners (never attributes); URL attributes must be http(s).
 * Children are nodes or strings (strings become text nodes); null, undefined and false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on')) {
      if (typeof value !== 'function') throw new TypeError(`${key} must be a function`);
      el.addEventListener(key.slice(2), value);
    } else if (PROPERTIES.has(key)) el[key] = value;
    else {
      if (URL_ATTRIBUTES.has(key) && !safeUrl(value)) throw new TypeError(`refusing ${key}=${value}`);
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, ...children);
  return el;
}

/** Append children (nodes or strings, nested arrays allowed) as nodes and text. */
export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replace all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, ...children);
}

/** Set an element's text (if it changed: keeps selections and screen readers calm). */
export function setText(el, value) {
  const text = value === null || value === undefined ? '' : String(value);
  if (el.textContent !== text) el.textContent = text;
}

/**
 * Keep `container`'s children in step with `items`, reusing the element of each key:
 * `create(item)` builds one, `update(el, item)` refreshes it in place (so focus, open forms and
 * typed text survive a live update). Returns the number of items shown.
 */
export function syncList(container, items, key, create, update) {
  const existing = new Map();
  for (const child of container.children) {
    if (child.dataset.key !== undefined) existing.set(child.dataset.key, child);
  }
  let previous = null;
  for (const item of items) {
    const k = String(key(item));
    let el = existing.get(k);
    if (el) existing.delete(k);
    else {
      el = create(item);
      el.dataset.key = k;
    }
    update(el, item);
    const next = previous ? previous.nextElementSibling : container.firstElementChild;
    if (next !== el) container.insertBefore(el, next);
    previous = el;
  }
  for (const stale of existing.values()) stale.remove();
  return items.length;
}

/**
 * A button that asks to be pressed twice: the first press changes its label to `confirmLabel`
 * for a few seconds (no modal dialog), the second runs `action`.
 */
export function confirmButton(label, confirmLabel, action, { className = 'danger' } = {}) {
  let armed = null;
  const button = h('button', { type: 'button', class: className, text: label });
  button.addEventListener('click', async () => {
    if (!armed) {
      button.textContent = confirmLabel;
      button.classList.add('armed');
      armed = setTimeout(() => {
        armed = null;
        button.textContent = label;
        button.classList.remove('armed');
      }, 4000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    button.textContent = label;
    button.classList.remove('armed');
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** A labelled form field: <label>text <input ...></label> with an id for tests and scripts. */
export function field(labelText, input, hint) {
  return h('label', { class: 'field' },
    h('span', { class: 'label', text: labelText }), input, hint ? h('span', { class: 'hint', text: hint }) : null);
}
