// Settings: every key the daemon reports, and a form for the few that change while it runs
// (PATCH /api/v1/settings sends only the keys that were changed).

import { api } from '../api.js';
import { field, h, replace } from '../dom.js';
import { attempt, notify, page, section } from '../ui.js';

const EDITABLE = [
  { key: 'inbox.unpaired', label: 'Files from devices that are not paired', kind: 'choice',
    choices: [['hold', 'receive and hold them for approval'], ['refuse', 'refuse them']] },
  { key: 'inbox.per_device', label: 'A folder per device in the inbox', kind: 'boolean' },
  { key: 'transfer.encrypt', label: 'Encrypt chunks end to end (on top of DTLS)', kind: 'boolean' },
  { key: 'outbox.after_send', label: 'After an outbox file is sent', kind: 'choice',
    choices: [['move', 'move it to sent/'], ['delete', 'delete it'], ['keep', 'keep it']] },
  { key: 'share.ttl', label: 'How long a share is kept (seconds)', kind: 'seconds' },
];

function valueText(value) {
  if (value === null || value === undefined || value === '') return '—';
  if (Array.isArray(value)) return value.length ? value.join(', ') : '—';
  return String(value);
}

function input(spec, value) {
  const id = `setting-${spec.key.replace(/\W/g, '-')}`;
  if (spec.kind === 'boolean') return h('input', { type: 'checkbox', id, checked: Boolean(value) });
  if (spec.kind === 'seconds') return h('input', { type: 'number', id, min: '1', step: '1', value: String(value ?? '') });
  return h('select', { id }, spec.choices.map(([v, text]) => h('option', { value: v, text, selected: v === value })));
}

function read(spec, el) {
  if (spec.kind === 'boolean') return el.checked;
  if (spec.kind === 'seconds') return Number(el.value);
  return el.value;
}

export function render(main) {
  const all = h('dl', { class: 'settings', id: 'settings-list' });
  const form = h('form', { class: 'settings-form', id: 'settings-form' });
  main.append(...page('Settings',
    section('Change now', form),
    section('Everything in effect', h('p', { class: 'muted', text: 'From the configuration file, environment '
      + 'and flags; secrets are never shown.' }), all)));

  let current = {};
  const inputs = new Map();

  function show(settings) {
    current = settings;
    replace(all, Object.keys(settings).sort().map((key) => [
      h('dt', { text: key }), h('dd', { text: valueText(settings[key]) }),
    ]));
    inputs.clear();
    const fields = EDITABLE.filter((spec) => spec.key in settings).map((spec) => {
      const el = input(spec, settings[spec.key]);
      inputs.set(spec.key, el);
      return field(spec.label, el, spec.key);
    });
    replace(form, fields, h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', text: 'Save' })));
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const changes = {};
    for (const spec of EDITABLE) {
      const el = inputs.get(spec.key);
      if (!el) continue;
      const value = read(spec, el);
      if (spec.kind === 'seconds' && !(value > 0)) {
        notify(`${spec.label}: give a number of seconds above 0.`, 'error');
        return;
      }
      if (value !== current[spec.key]) changes[spec.key] = value;
    }
    if (!Object.keys(changes).length) {
      notify('Nothing changed.');
      return;
    }
    const saved = await attempt(() => api('PATCH', '/api/v1/settings', { json: changes }), 'Saved.');
    if (saved) show(saved);
  });

  attempt(() => api('GET', '/api/v1/settings')).then((settings) => settings && show(settings));
  return () => {};
}
