// Numbers and times as people read them.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function bytes(n) {
  if (!Number.isFinite(n) || n < 0) return '?';
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]}`;
}

export function speed(bytesPerSecond) {
  if (!bytesPerSecond || bytesPerSecond <= 0) return '';
  return `${bytes(bytesPerSecond)}/s`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const hours = Math.floor(m / 60);
  return `${hours} h ${m % 60} min`;
}

export function eta(seconds) {
  const text = duration(seconds);
  return text ? `${text} left` : '';
}

/** Unix seconds as a local date and time. */
export function when(unixSeconds) {
  if (!unixSeconds) return '';
  return new Date(unixSeconds * 1000).toLocaleString();
}

/** How long ago (or until) a Unix time, roughly. */
export function relative(unixSeconds) {
  if (!unixSeconds) return '';
  const delta = unixSeconds - Date.now() / 1000;
  const text = duration(Math.abs(delta));
  return delta >= 0 ? `in ${text}` : `${text} ago`;
}

export function percent(done, total) {
  if (!total) return 0;
  return Math.min(100, Math.floor((100 * done) / total));
}

/** A 6-digit code as "123 456". */
export function code(value) {
  const text = String(value ?? '');
  return /^\d{6}$/.test(text) ? `${text.slice(0, 3)} ${text.slice(3)}` : text;
}

/** Join a '/'-separated inbox path into a URL path, each part escaped. */
export function urlPath(path) {
  return String(path).split('/').map(encodeURIComponent).join('/');
}

export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}
