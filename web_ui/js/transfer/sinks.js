// Where received files go: straight to disk through the File System Access API where the browser
// has it (Chromium on a secure context), otherwise into memory as Blobs the person then downloads.
// A sink never overwrites: on disk a taken name becomes "name (1).ext"; an aborted file is dropped
// (a FileSystemWritableFileStream writes to a swap file until close()).

export const MEMORY_WARNING_BYTES = 512 * 1024 * 1024;

export function diskAvailable() {
  return typeof window.showSaveFilePicker === 'function' && typeof window.showDirectoryPicker === 'function';
}

export function baseName(path) {
  const parts = path.split('/').filter((p) => p !== '');
  return parts.length ? parts[parts.length - 1] : 'file';
}

function checkedSegments(path) {
  const segments = path.split('/');
  for (const segment of segments) {
    if (segment === '' || segment === '.' || segment === '..' || segment.includes('\\') || /[\x00-\x1f\x7f]/.test(segment)) {
      throw new Error(`refusing the unsafe path ${JSON.stringify(path.slice(0, 200))}`);
    }
  }
  return segments;
}

async function exists(directory, name) {
  try {
    await directory.getFileHandle(name);
    return true;
  } catch {
    return false;
  }
}

async function freeName(directory, name) {
  if (!(await exists(directory, name))) return name;
  const dot = name.lastIndexOf('.');
  const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ''];
  for (let n = 1; n < 1000; n += 1) {
    const candidate = `${stem} (${n})${ext}`;
    if (!(await exists(directory, candidate))) return candidate;
  }
  throw new Error(`no free name for ${name}`);
}

/** A new file at `path` below `root` (directories created), never replacing one. */
async function newFileIn(root, path) {
  const segments = checkedSegments(path);
  let directory = root;
  for (const segment of segments.slice(0, -1)) directory = await directory.getDirectoryHandle(segment, { create: true });
  const name = await freeName(directory, segments[segments.length - 1]);
  return directory.getFileHandle(name, { create: true });
}

class DiskSink {
  constructor(handleFor) {
    this.handleFor = handleFor;
    this.writable = null;
    this.saved = [];
  }

  async open(index, file) {
    const handle = await this.handleFor(file);
    this.writable = await handle.createWritable();
    this.saved.push({ path: file.path, name: handle.name });
  }

  async write(index, bytes) {
    await this.writable.write(bytes);
  }

  async close() {
    await this.writable.close();
    this.writable = null;
  }

  async finish() {
    return { kind: 'disk', files: this.saved };
  }

  async abort() {
    if (this.writable) await this.writable.abort();
    this.writable = null;
  }
}

/** Ask where to save (a file for one, a folder for several; needs a click just before). */
export async function pickDiskSink(files) {
  if (files.length === 1) {
    const handle = await window.showSaveFilePicker({ suggestedName: baseName(files[0].path) });
    return new DiskSink(async () => handle);
  }
  const root = await window.showDirectoryPicker({ mode: 'readwrite' });
  return new DiskSink((file) => newFileIn(root, file.path));
}

/** Files kept in memory; finish() gives [{path, name, blob}] to offer as downloads. */
export class MemorySink {
  constructor() {
    this.parts = [];
    this.files = [];
    this.current = null;
  }

  async open(index, file) {
    this.current = file;
    this.parts = [];
  }

  async write(index, bytes) {
    this.parts.push(bytes);
  }

  async close() {
    const blob = new Blob(this.parts, { type: 'application/octet-stream' });
    this.files.push({ path: this.current.path, name: baseName(this.current.path), blob });
    this.parts = [];
  }

  async finish() {
    return { kind: 'memory', files: this.files };
  }

  async abort() {
    this.parts = [];
    this.files = [];
  }
}
