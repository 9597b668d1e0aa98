// Log in with the API token (the file <state_dir>/api-token on the appliance) or, when the owner
// set one, the web password. The answer is a session cookie the page never sees (HttpOnly).

import { login } from '../api.js';
import { h, setText } from '../dom.js';

export function render(main, { onLogin }) {
  const tokenChoice = h('input', { type: 'radio', name: 'kind', value: 'token', checked: true, id: 'login-kind-token' });
  const passwordChoice = h('input', { type: 'radio', name: 'kind', value: 'password', id: 'login-kind-password' });
  const secret = h('input', {
    type: 'password', id: 'login-secret', name: 'secret', required: true, autocomplete: 'off', spellcheck: 'false',
  });
  const secretLabel = h('span', { class: 'label', text: 'API token' });
  const error = h('p', { class: 'error-text', role: 'alert', id: 'login-error' });
  const submit = h('button', { type: 'submit', class: 'primary', text: 'Log in' });
  const form = h('form', { class: 'login', id: 'login-form' },
    h('fieldset', {},
      h('legend', { text: 'Log in with' }),
      h('label', { class: 'choice' }, tokenChoice, ' the API token'),
      h('label', { class: 'choice' }, passwordChoice, ' the password')),
    h('label', { class: 'field' }, secretLabel, secret,
      h('span', { class: 'hint', text: 'The token is in the file api-token in the appliance\u2019s state folder.' })),
    error, submit);

  const kind = () => (passwordChoice.checked ? 'password' : 'token');
  for (const choice of [tokenChoice, passwordChoice]) {
    choice.addEventListener('change', () => {
      setText(secretLabel, kind() === 'password' ? 'Password' : 'API token');
      secret.setAttribute('autocomplete', kind() === 'password' ? 'current-password' : 'off');
    });
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    setText(error, '');
    submit.disabled = true;
    try {
      await login({ [kind()]: secret.value.trim() });
      secret.value = '';
      onLogin();
    } catch (failure) {
      setText(error, failure.status === 401 ? 'That is not the token or password.' : failure.message);
      secret.focus();
      secret.select();
    } finally {
      submit.disabled = false;
    }
  });

  main.append(h('h1', { text: 'Log in' }), h('section', { class: 'panel narrow' }, form));
  secret.focus();
  return () => {};
}
