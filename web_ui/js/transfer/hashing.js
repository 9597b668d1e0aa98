// SHA-256 for pages: @noble/hashes (from the npm registry at build time, web_ui/vendor/), loaded
// only when a page transfers files, so the rest of the UI works without it.

export class MissingDependency extends Error {}

export async function loadSha256() {
  try {
    return (await import('../../vendor/noble_hashes/sha2.js')).sha256;
  } catch {
    throw new MissingDependency('This appliance was installed without its web dependencies (SHA-256); '
      + 'transfers in the browser are not available.');
  }
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The SHA-256 (hex) of a File or Blob, read as a stream; `onProgress(bytesRead)`. */
export async function hashBlob(sha256, blob, onProgress = () => {}) {
  const hasher = sha256.create();
  const reader = blob.stream().getReader();
  let read = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    hasher.update(value);
    read += value.length;
    onProgress(read);
  }
  return hex(hasher.digest());
}
