// LocalLLM weight store: the byte-moving half of app/store (Python decides, this file moves bytes).
//
// IndexedDB database (one per store name), version 1:
//   files   keyPath "key"           {key, url, size, sha256, etag, chunk_size, complete, date, name}
//   chunks  keyPath ["key","index"] {key, index, size, sha256, data: ArrayBuffer}
// Every chunk but a file's last holds exactly chunk_size bytes; a chunk is written in its own
// transaction, so it exists whole or not at all (that is what resume relies on).
//
// Bulk bytes never cross into Python: a download is `open` (fetch, headers only) then `pump` (a
// reader loop that fills fixed-size chunks, hashes each with SubtleCrypto and puts it). Metadata
// crosses as JSON strings (no null/undefined proxies). Failures are returned as
// {error: {name, message}} values, not thrown, so Python sees exactly how far a transfer got.
// Names: NetworkError, StallError, LengthError, QuotaExceededError, IDBError.
//
// Whole-file SHA-256: SubtleCrypto only hashes a whole buffer, so files are hashed incrementally
// with hash-wasm's SHA-256 (vendored by build.py into vendor/hash-wasm/): a hasher is fed each
// chunk as pump() stores it, so a download is verified without reading it back.

const DB_VERSION = 1;
const dbs = new Map();

const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
const fail = (name, message) => ({ name, message: String(message) });
const chunkRange = (key) => IDBKeyRange.bound([key, 0], [key, Infinity]);

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new DOMException("transaction aborted", "AbortError"));
  });
}

export function openDB(name) {
  if (!dbs.has(name)) {
    dbs.set(name, new Promise((resolve, reject) => {
      const req = indexedDB.open(name, DB_VERSION);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains("files")) db.createObjectStore("files", { keyPath: "key" });
        if (!db.objectStoreNames.contains("chunks")) db.createObjectStore("chunks", { keyPath: ["key", "index"] });
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => { dbs.delete(name); reject(req.error); };
      req.onblocked = () => reject(new DOMException(`IndexedDB ${name} is blocked by another tab`, "IDBError"));
    }));
  }
  return dbs.get(name);
}

export function closeDB(name) {
  const p = dbs.get(name);
  dbs.delete(name);
  if (readerState) readerState.close(name);     // the reader worker's connection too
  return p ? p.then((db) => db.close()) : Promise.resolve();
}

// -- records ------------------------------------------------------------------------------------
export async function getFile(db, key) {
  return JSON.stringify((await request(db.transaction("files").objectStore("files").get(key))) ?? null);
}

export async function putFile(db, record) {
  const tx = db.transaction("files", "readwrite");
  tx.objectStore("files").put(record);
  await done(tx);
}

export async function listFiles(db) {
  const tx = db.transaction(["files", "chunks"]);
  const files = await request(tx.objectStore("files").getAll());
  const chunks = tx.objectStore("chunks");
  for (const f of files) f.chunks_stored = await request(chunks.count(chunkRange(f.key)));
  return JSON.stringify(files);
}

export async function chunkIndices(db, key) {
  const keys = await request(db.transaction("chunks").objectStore("chunks").getAllKeys(chunkRange(key)));
  return JSON.stringify(keys.map((k) => k[1]));
}

// Delete a file's chunks with index >= fromIndex, and its record when dropRecord.
export async function deleteChunks(db, key, fromIndex = 0, dropRecord = false) {
  const tx = db.transaction(["files", "chunks"], "readwrite");
  tx.objectStore("chunks").delete(IDBKeyRange.bound([key, fromIndex], [key, Infinity]));
  if (dropRecord) tx.objectStore("files").delete(key);
  await done(tx);
}

export async function clearAll(db) {
  const tx = db.transaction(["files", "chunks"], "readwrite");
  tx.objectStore("files").clear();
  tx.objectStore("chunks").clear();
  await done(tx);
}

// -- incremental whole-file SHA-256 ---------------------------------------------------------------
let hashWasm = null;

// A fresh SHA-256 hasher ({init, update(Uint8Array), digest("hex")}).
export async function hasherNew() {
  if (!hashWasm) {
    // A UMD bundle: imported for its side effect, it defines globalThis.hashwasm.
    const url = new URL("../vendor/hash-wasm/sha256.umd.min.js", import.meta.url).href;
    hashWasm = import(url).then(() => globalThis.hashwasm)
      .catch((e) => { hashWasm = null; throw e; });
  }
  const hasher = await (await hashWasm).createSHA256();
  hasher.init();
  return hasher;
}

export function hasherUpdate(hasher, bytes) {
  hasher.update(bytes);
}

export function hasherDigest(hasher) {
  return hasher.digest("hex");
}

// Feed stored chunks [from, to) of `key` to `hasher`, in order, one chunk in memory at a time.
// -> JSON {bytes, error}; error names the first missing chunk.
export async function hashStored(db, key, hasher, from, to) {
  let bytes = 0;
  for (let i = from; i < to; i++) {
    const rec = await request(db.transaction("chunks").objectStore("chunks").get([key, i]));
    if (!rec) return JSON.stringify({ bytes, error: fail("IDBError", `chunk ${i} of ${key} is missing`) });
    hasher.update(new Uint8Array(rec.data));
    bytes += rec.data.byteLength;
  }
  return JSON.stringify({ bytes, error: null });
}

// -- chunks -------------------------------------------------------------------------------------
export async function sha256(data) {
  return hex(await crypto.subtle.digest("SHA-256", data));
}

async function storeChunk(db, key, index, bytes) {
  // digest() and put() both copy `bytes` when called, so the caller may reuse its buffer after.
  const digest = await sha256(bytes);
  const tx = db.transaction("chunks", "readwrite");
  tx.objectStore("chunks").put({ key, index, size: bytes.byteLength, sha256: digest, data: bytes });
  await done(tx);
  return digest;
}

export async function putChunk(db, key, index, bytes) {
  try {
    return JSON.stringify({ sha256: await storeChunk(db, key, index, bytes), error: null });
  } catch (e) {
    return JSON.stringify({ sha256: null, error: fail(e && e.name === "QuotaExceededError" ? e.name : "IDBError", e) });
  }
}

// One chunk as {data: Uint8Array, meta: JSON {size, sha256 (recorded), actual (recomputed when
// verify)}}, or {data: null} when it is not stored. Read by the reader worker when one runs (see
// below), else on this thread.
export async function readChunk(db, key, index, verify) {
  const worker = reader();
  if (worker) {
    try {
      return await worker.read(db.name, key, index, verify);
    } catch (e) {
      if (!(e instanceof ReaderUnavailable)) throw e;
    }
  }
  return readChunkHere(db, key, index, verify);
}

export async function readChunkHere(db, key, index, verify) {
  const rec = await request(db.transaction("chunks").objectStore("chunks").get([key, index]));
  if (!rec) return { data: null, meta: "null" };
  // The record's data is a fresh deserialized copy: view it, don't copy it again.
  const d = rec.data;
  const data = ArrayBuffer.isView(d) ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : new Uint8Array(d);
  const meta = { size: rec.size, sha256: rec.sha256, actual: verify ? await sha256(data) : null };
  return { data, meta: JSON.stringify(meta) };
}

// -- the reader worker ----------------------------------------------------------------------------
// A chunk read costs this thread more than the bytes' arrival: IndexedDB deserializes the 16 MiB
// record here and SubtleCrypto copies it here before hashing. In the engine this is the thread that
// parses and uploads tensors, so a cached load ran at about (plain read + hashing) + upload. A
// dedicated worker (store-reader.js) does the get and the hash on its own thread and transfers
// the chunk's ArrayBuffer back (no copy); loads then overlap reading with uploading
// (docs/benchmarks.md, "Weight store"). Where no worker can be started (or it fails to load) the
// reads happen here as before.
class ReaderUnavailable extends Error {}
let readerState;                 // undefined: not started yet; null: unavailable

// Whether chunk reads go through the reader worker (default true; tests and benchmarks compare).
// false stops a running worker; true lets the next read start one (a running one is kept).
export function useReader(enabled) {
  if (enabled) {
    if (readerState === null) readerState = undefined;
  } else {
    if (readerState) readerState.terminate();
    readerState = null;
  }
}

// Whether the reader worker runs (it starts with the first chunk read).
export function readerRunning() {
  return Boolean(readerState);
}

// Start the reader worker now and wait until it answers (its scripts are loaded): e.g. before
// going offline. -> whether it runs.
export async function startReader() {
  const worker = reader();
  if (worker) {
    try {
      await worker.ping();
    } catch (e) {
      if (!(e instanceof ReaderUnavailable)) throw e;
    }
  }
  return Boolean(readerState);
}

function reader() {
  if (readerState !== undefined) return readerState;
  readerState = null;
  let worker;
  try {
    worker = new Worker(new URL("./store-reader.js", import.meta.url), { type: "module", name: "store-reader" });
  } catch (e) {
    return null;
  }
  const pending = new Map();
  let next = 0;
  let state;
  const giveUp = (why) => {
    if (readerState === state) readerState = null;
    worker.terminate();
    for (const { reject } of pending.values()) reject(new ReaderUnavailable(why));
    pending.clear();
  };
  worker.onerror = (e) => { e.preventDefault(); giveUp(`store-reader.js failed: ${e.message}`); };
  worker.onmessageerror = () => giveUp("store-reader.js sent a message that could not be read");
  worker.onmessage = ({ data: m }) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.error) p.reject(new DOMException(m.error.message, m.error.name));
    else p.resolve({ data: m.data, meta: m.meta });
  };
  const ask = (message) => {
    const id = next++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, ...message });
    });
  };
  readerState = state = {
    read: (db, key, index, verify) => ask({ db, key, index, verify }),
    ping: () => ask({ ping: true }),
    close(db) { worker.postMessage({ close: db }); },
    terminate() { giveUp("stopped"); },
  };
  return readerState;
}

export function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.byteLength; }
  return out;
}

// -- network ------------------------------------------------------------------------------------
function withTimeout(promise, ms, onTimeout) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => { onTimeout(); reject(new DOMException(`no data for ${ms} ms`, "StallError")); }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Start a GET of bytes [start, end] (end null: to the end of the file), with the extra request
// headers in extraJson (a JSON object, e.g. {"Authorization": "Bearer ..."}). Resolves when the
// headers are in: {meta: JSON {status, content_length, content_range, etag, error}, handle}.
export async function open(url, start, end, stallMs, extraJson = "{}") {
  const controller = new AbortController();
  const headers = JSON.parse(extraJson || "{}");
  if (start > 0 || end != null) headers.Range = `bytes=${start}-${end == null ? "" : end}`;
  try {
    // no-store: the bytes go to IndexedDB; the HTTP cache would hold a second copy.
    const resp = await withTimeout(fetch(url, { headers, cache: "no-store", signal: controller.signal }),
                                   stallMs, () => controller.abort());
    const h = (name) => resp.headers.get(name);
    const meta = { status: resp.status, content_length: h("content-length"), content_range: h("content-range"),
                   etag: h("etag"), error: null };
    return { meta: JSON.stringify(meta), handle: { resp, controller } };
  } catch (e) {
    const error = fail(e && e.name === "StallError" ? "StallError" : "NetworkError", e);
    return { meta: JSON.stringify({ status: 0, error }), handle: null };
  }
}

export function abort(handle) {
  if (handle) handle.controller.abort();
}

// Read handle's body into chunks key/firstIndex, firstIndex+1, ... of chunkSize bytes. `expected`
// is the body length the caller asked for (null: unknown, the end of the stream ends the file).
// A final partial chunk is stored only when the body is complete. onProgress(bytesReceived) is
// called at most every 100 ms and after each stored chunk. `hasher` (or null) is fed each chunk
// once it is stored, so it always covers exactly chunks firstIndex .. firstIndex + chunks - 1.
// -> {chunks: stored, bytes: received, stored: bytes stored, error}
export async function pump(db, handle, key, firstIndex, chunkSize, expected, stallMs, onProgress,
                           hasher = null) {
  const reader = handle.resp.body.getReader();
  let buf = new Uint8Array(chunkSize), fill = 0, index = firstIndex, received = 0, stored = 0;
  let last = 0;
  const result = (error) => JSON.stringify({ chunks: index - firstIndex, bytes: received, stored, error });
  const commit = async () => {
    // A partial (last) chunk is stored from its own buffer: a view would make IndexedDB store
    // the whole chunkSize buffer behind it.
    const bytes = fill === chunkSize ? buf : buf.slice(0, fill);
    await storeChunk(db, key, index, bytes);
    if (hasher) hasher.update(bytes);
    stored += fill; index += 1; fill = 0;
    onProgress(received);
  };
  try {
    for (;;) {
      let step;
      try {
        step = await withTimeout(reader.read(), stallMs, () => handle.controller.abort());
      } catch (e) {
        return result(fail(e && e.name === "StallError" ? "StallError" : "NetworkError", e));
      }
      if (step.done) break;
      let value = step.value;
      if (expected != null && received + value.byteLength > expected) {
        handle.controller.abort();
        return result(fail("LengthError", `the server sent more than the ${expected} bytes asked for`));
      }
      received += value.byteLength;
      while (value.byteLength > 0) {
        const n = Math.min(chunkSize - fill, value.byteLength);
        buf.set(value.subarray(0, n), fill);
        fill += n;
        value = value.subarray(n);
        if (fill === chunkSize) await commit();
      }
      const now = performance.now();
      if (now - last > 100) { last = now; onProgress(received); }
    }
    if (fill > 0 && (expected == null || received === expected)) await commit();
    return result(null);
  } catch (e) {
    handle.controller.abort();
    return result(fail(e && e.name === "QuotaExceededError" ? e.name : "IDBError", e));
  }
}

// The whole body (at most maxBytes) as a Uint8Array: for re-fetching one chunk.
export async function readAll(handle, maxBytes, stallMs) {
  const reader = handle.resp.body.getReader();
  const out = new Uint8Array(maxBytes);
  let fill = 0;
  try {
    for (;;) {
      const step = await withTimeout(reader.read(), stallMs, () => handle.controller.abort());
      if (step.done) break;
      if (fill + step.value.byteLength > maxBytes) {
        handle.controller.abort();
        return { data: null, error: JSON.stringify(fail("LengthError", `more than ${maxBytes} bytes`)) };
      }
      out.set(step.value, fill);
      fill += step.value.byteLength;
    }
  } catch (e) {
    return { data: null, error: JSON.stringify(fail(e && e.name === "StallError" ? "StallError" : "NetworkError", e)) };
  }
  return { data: out.subarray(0, fill), error: "null" };
}

// -- storage manager and locks ------------------------------------------------------------------
export async function estimate() {
  const { usage, quota } = await navigator.storage.estimate();
  return JSON.stringify({ usage, quota });
}

export async function persist() {
  if (!navigator.storage || !navigator.storage.persist) return false;
  return (await navigator.storage.persisted()) || (await navigator.storage.persist());
}

// Resolves with a release() function once the Web Lock `name` is held (this tab or worker holds
// it until release() is called or the tab goes away).
export function acquireLock(name) {
  return new Promise((resolve, reject) => {
    navigator.locks.request(name, () => new Promise((release) => resolve(() => release()))).catch(reject);
  });
}
