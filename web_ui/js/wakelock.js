// Keep the screen on while something moves (a phone that sleeps suspends the page and its
// uploads). Each reason holds the lock; it is released when the last reason goes. Browsers drop
// the lock when the page is hidden: it is asked for again when the page is visible. Where the
// Screen Wake Lock API is missing (or the page is not a secure context), this does nothing.

const reasons = new Set();
let sentinel = null;
let pending = null;

export function supported() {
  return 'wakeLock' in navigator;
}

/** Whether the screen is being kept on now. */
export function held() {
  return sentinel !== null && !sentinel.released;
}

export function hold(reason) {
  reasons.add(reason);
  return update();
}

export function release(reason) {
  reasons.delete(reason);
  return update();
}

async function update() {
  if (!supported()) return;
  if (pending) await pending;
  pending = apply().finally(() => {
    pending = null;
  });
  await pending;
}

async function apply() {
  const wanted = reasons.size > 0 && document.visibilityState === 'visible';
  if (wanted && !held()) {
    try {
      sentinel = await navigator.wakeLock.request('screen');
      sentinel.addEventListener('release', () => {
        sentinel = null;
      });
    } catch {
      sentinel = null; // refused (battery saver, permissions policy): transfers go on anyway
    }
  } else if (!wanted && held() && reasons.size === 0) {
    const lock = sentinel;
    sentinel = null;
    await lock.release().catch(() => {});
  }
}

document.addEventListener('visibilitychange', () => {
  update();
});
