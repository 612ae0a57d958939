// LocalLLM: the runtime API for plain JS pages (ES module). The engine (Pyodide + WebGPU, the
// Python class app.runtime.LocalLLM) runs in a dedicated module worker, static/engine-worker.js;
// this module only sends requests and relays events, so the page's thread stays free.
//
//   import LocalLLM from "./static/local-llm.js";      // or window.LocalLLM after the page fires
//   await LocalLLM.ready();                             //    "local-llm:api-ready"
//   await LocalLLM.init();                              // the catalog's default model
//   const r = await LocalLLM.chat([{role: "user", content: "Hi"}], {maxTokens: 32});
//   for await (const {delta} of await LocalLLM.chat(msgs, {stream: true})) show(delta);
//
// Methods mirror the Python API (snake_case there, camelCase here): checkWebGPU, init, chat,
// complete, interrupt, switchModel, unload, getAvailableModels, getStatus, getRuntimeInfo,
// cancelLoad, getCache, deleteCached, deleteCachedFile, addModel, removeModel,
// importModelFile, on(name, cb), chat.completions.create. Option keys are camelCase (maxTokens, topP, contextLength,
// kvDtype, hfToken, ...) and are sent as snake_case; results keep the Python keys
// ({text, finish_reason, usage}). Every method but getStatus and on returns a Promise; a failure
// rejects with an Error whose .name is the Python error's class name (WebGPUUnavailableError,
// NotLoadedError, ModelNotFoundError, ...) and whose .message says what to do.
// init/switchModel take {backend: "auto" | "webgpu" | "cpu", cpuFallback, threads}: "auto" runs
// the model on the CPU backend (llama.cpp in WebAssembly, docs/cpu-backend.md) when WebGPU is
// missing or the model does not fit; getStatus().backend says which one runs it, and a
// "local-llm:backend" event says why the CPU was chosen.
//
// Loads, the weight cache and the user's models (app/runtime/catalog_ops.py):
//   cancelLoad() -> true if a load was stopped: the running init/switchModel (any phase) and
//     every queued one reject with LoadCancelledError; status goes back to idle (a queued load
//     that never started leaves the current model loaded); downloaded chunks stay in IndexedDB
//     and the next init resumes (HTTP Range). Answered at once, not queued.
//   getCache() -> {models: [{id, name, bytes, size, complete, partial, loaded, files: [{key,
//     name, bytes, complete}]}], other: [{key, name, bytes, complete}], usage, quota, persisted}
//   deleteCached(modelId) / deleteCachedFile(key) -> the new getCache(); ModelBusyError while
//     that model loads (nothing deleted), CachedFileNotFoundError for an unknown key. Deleting
//     the loaded model's files is allowed: it keeps answering.
//   addModel(url | [urls], {name, gated}) -> the model's getAvailableModels() entry, kept across
//     visits; ModelURLError for anything but an http(s) URL of a .gguf (or a safetensors set).
//   removeModel(id) -> getCache(); removes a user model and its files (ModelNotRemovableError
//     for a built-in one).
//   importModelFile(file, {name}) -> the new model's entry: copies a picked/dropped File (or
//     Blob) of a GGUF into the weight store ("progress" events with phase "import"), checks
//     that the engine can load it and keeps it as a user model; init(its id) needs no network.
//     A bad file rejects with the parser's error (BadMagicError, TruncatedFileError,
//     TensorOutOfRangeError, UnsupportedArchitectureError, ...) and leaves nothing stored.
// "progress" events carry speed_bps (bytes/s over the last ~2 s of the phase, null before
// enough data) and eta_s (seconds left, null when unknown).
//
// Worker protocol (structured-clone messages, JSON-shaped):
//   page -> worker  {id, op, args: [...], kwargs: {...}}          op: a method name above, or
//                   "cancel" (args [stream id]), "selfTest" and "loseDevice" (diagnostics);
//                   a File/Blob among args/kwargs (importModelFile) is cloned as it is and set
//                   aside by the worker's JS (the rest crosses to Python as JSON)
//   worker -> page  {id, result, status} | {id, error: {name, message}, status}
//                   {id, stream: true} then {id, item} ... {id, done: true} | {id, error}
//                   {event, detail, memory}   memory: the GPU ledger snapshot when it fired
//                   {ready: true, status} once Python is up; {fatal: {name, message}} if not
// Events are dispatched on window as CustomEvent("local-llm:<name>", {detail}) and to on()
// listeners as cb(detail, {memory}). getStatus() returns the last status the worker reported
// ({state: "idle", model: null, ...} until it is up).
//
// Remote fallback (opt-in; docs/remote.md): the worker's service is the hybrid provider.
// getRemoteConfig() -> {enabled, base_url, model, mode, has_api_key, insecure} (the key
// itself never comes back); setRemoteConfig({enabled, baseUrl, apiKey, model,
// mode}) stores the given keys in this origin's IndexedDB (mode "local" | "remote" | "auto";
// apiKey null clears it). Every result and stream item carries provider: "local" | "remote",
// and before a request leaves the device the "provider" event fires ({provider, reason,
// local_error, host, model, kind}; window: local-llm:provider) so the page can show a badge.

const WORKER_URL = new URL("./engine-worker.js", import.meta.url);
const hasWindow = typeof window !== "undefined";

let worker = null;
let nextId = 1;
let status = { state: "idle", model: null, progress: 0, error: null };
let readyState = null;                 // {promise, resolve, reject, started}
let fatal = null;                      // the Error that stopped the worker, if one did
const calls = new Map();               // id -> {resolve, reject, stream}
const listeners = new Map();           // event name -> Set of callbacks

const snake = (key) => key.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
const snakeKeys = (opts) => Object.fromEntries(Object.entries(opts ?? {}).map(([k, v]) => [snake(k), v]));

function namedError({ name, message }) {
  const err = new Error(message);
  err.name = name;
  return err;
}

function dispatch(name, detail, meta = {}) {
  if (hasWindow) window.dispatchEvent(new CustomEvent(`local-llm:${name}`, { detail }));
  for (const cb of listeners.get(name) ?? []) {
    try {
      cb(detail, meta);
    } catch (err) {
      console.error(`LocalLLM: a "${name}" listener threw`, err);
    }
  }
}

// An async iterable fed by {id, item} messages. Leaving a for-await loop early calls return(),
// which asks the worker to stop that generation (finish_reason "abort") and drops what follows.
class Stream {
  constructor(id) {
    this.id = id;
    this.items = [];
    this.waiting = null;               // {resolve, reject} of a pending next()
    this.ended = false;
    this.error = null;
  }

  push(item) {
    if (this.waiting) {
      this.waiting.resolve({ value: item, done: false });
      this.waiting = null;
    } else {
      this.items.push(item);
    }
  }

  end(error = null) {
    this.ended = true;
    this.error = error;
    calls.delete(this.id);
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      if (error) w.reject(error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  next() {
    if (this.items.length) return Promise.resolve({ value: this.items.shift(), done: false });
    if (this.ended) {
      const err = this.error;
      this.error = null;               // reported once
      return err ? Promise.reject(err) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => { this.waiting = { resolve, reject }; });
  }

  return() {
    if (!this.ended) {
      send("cancel", [this.id]).catch(() => {});
      this.end();
    }
    this.items.length = 0;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}

function onMessage({ data: msg }) {
  if (msg.status) status = msg.status;
  if (msg.event !== undefined) {
    if (msg.event === "status") status = msg.detail;
    dispatch(msg.event, msg.detail, { memory: msg.memory ?? null });
    return;
  }
  if (msg.ready) {
    readyState.started = true;
    readyState.resolve();
    dispatch("api-ready", { status });
    return;
  }
  if (msg.fatal) {
    fail(namedError(msg.fatal));
    return;
  }
  const call = calls.get(msg.id);
  if (!call) return;                   // a cancelled stream's remaining items
  if (call.stream) {
    if (msg.item !== undefined) call.stream.push(msg.item);
    else if (msg.done) call.stream.end();
    else if (msg.error) call.stream.end(namedError(msg.error));
    return;
  }
  if (msg.stream) {
    call.stream = new Stream(msg.id);
    call.resolve(call.stream);
    return;
  }
  calls.delete(msg.id);
  if (msg.error) call.reject(namedError(msg.error));
  else call.resolve(msg.result);
}

// The worker could not start (Pyodide or the app failed to load) or died: every pending and
// later call fails with that error.
function fail(err) {
  fatal = err;
  status = { state: "error", model: null, progress: 0, error: { name: err.name, message: err.message } };
  readyState.reject(err);
  for (const call of calls.values()) {
    if (call.stream) call.stream.end(err);
    else call.reject(err);
  }
  calls.clear();
  dispatch("error", { name: err.name, message: err.message, model: null });
  dispatch("status", status);
}

function start() {
  if (worker) return;
  let resolve, reject;
  const promise = new Promise((ok, no) => { resolve = ok; reject = no; });
  promise.catch(() => {});             // reported through ready() and the error event
  readyState = { promise, resolve, reject, started: false };
  worker = new Worker(WORKER_URL, { type: "module", name: "local-llm-engine" });
  worker.onmessage = onMessage;
  worker.onerror = (e) => {
    // The worker answers bad requests itself, so an uncaught error means it cannot go on.
    e.preventDefault();
    fail(namedError(readyState.started
      ? { name: "EngineError", message: `the engine worker failed (${e.message || "script error"}); reload the page` }
      : { name: "EngineStartError",
          message: `the engine worker failed to start (${e.message || "script error"}); ` +
                   "reload the page, and check that static/engine-worker.js is served" }));
  };
}

function send(op, args = [], kwargs = {}) {
  start();
  if (fatal) return Promise.reject(fatal);
  const id = nextId++;
  return new Promise((resolve, reject) => {
    calls.set(id, { resolve, reject, stream: null });
    try {
      worker.postMessage({ id, op, args, kwargs });
    } catch (err) {                    // DataCloneError: a function or a DOM node among the args
      calls.delete(id);
      reject(err);
    }
  });
}

// init(modelId?, options?) or init({modelId, ...options})
function modelAndOptions(modelId, opts) {
  if (modelId !== null && typeof modelId === "object") {
    const { modelId: id = null, model = null, ...rest } = modelId;
    return [id ?? model, rest];
  }
  return [modelId ?? null, opts ?? {}];
}

function chat(messages, opts = {}) {
  return send("chat", [messages], snakeKeys(opts));
}
chat.completions = {
  /** OpenAI-shaped: {model, messages, stream, maxTokens, ...} -> chat.completion (or chunks). */
  create(params = {}) {
    return send("chatCompletionsCreate", [], snakeKeys(params));
  },
};

export const LocalLLM = {
  /** Resolves once the worker takes calls (rejects with EngineStartError if it cannot start). */
  ready() {
    start();
    return readyState.promise;
  },
  checkWebGPU: () => send("checkWebGPU"),
  init(modelId = null, opts = {}) {
    const [id, rest] = modelAndOptions(modelId, opts);
    return send("init", [id], snakeKeys(rest));
  },
  chat,
  complete: (prompt, opts = {}) => send("complete", [prompt], snakeKeys(opts)),
  /** Stops the running generation now (it is not queued behind it). */
  interrupt: () => send("interrupt"),
  switchModel(modelId, opts = {}) {
    const [id, rest] = modelAndOptions(modelId, opts);
    return send("switchModel", [id], snakeKeys(rest));
  },
  unload: () => send("unload"),
  getAvailableModels: () => send("getAvailableModels"),
  /** Synchronous: the last status the worker reported. */
  getStatus: () => structuredClone(status),
  getRuntimeInfo: () => send("getRuntimeInfo"),
  /** Stops the running and queued loads now (they reject with LoadCancelledError); true if
   *  one was stopped. Downloaded chunks are kept: the next init resumes. */
  cancelLoad: () => send("cancelLoad"),
  /** {models: [...with stored files], other: [...], usage, quota, persisted}. */
  getCache: () => send("getCache"),
  /** Deletes a model's stored files; resolves to the new getCache(). */
  deleteCached: (modelId) => send("deleteCached", [modelId]),
  /** Deletes one stored file by key (getCache().other); resolves to the new getCache(). */
  deleteCachedFile: (key) => send("deleteCachedFile", [key]),
  /** addModel(url or [urls], {name, gated}): a user model kept across visits; its entry. */
  addModel: (urls, opts = {}) => send("addModel", [urls], snakeKeys(opts)),
  /** Removes a user model and its stored files; resolves to the new getCache(). */
  removeModel: (modelId) => send("removeModel", [modelId]),
  /** importModelFile(file, {name}): a local GGUF File/Blob into the weight store; its entry. */
  importModelFile: (file, opts = {}) => send("importModelFile", [file], snakeKeys(opts)),
  /** Remote provider settings without the key: {enabled, base_url, model, mode, has_api_key,
   *  insecure}. */
  getRemoteConfig: () => send("getRemoteConfig"),
  /** setRemoteConfig({enabled, baseUrl, apiKey, model, mode}): changes the given settings,
   *  stored on this device only; resolves to getRemoteConfig()'s shape. */
  setRemoteConfig: (config = {}) => send("setRemoteConfig", [], snakeKeys(config)),
  /** on("progress", (detail, {memory}) => ...) -> unsubscribe function. Names: loading,
   *  progress, ready, error, memory-warning, status, api-ready, provider. */
  on(name, cb) {
    if (!listeners.has(name)) listeners.set(name, new Set());
    listeners.get(name).add(cb);
    return () => listeners.get(name).delete(cb);
  },
  /** Diagnostics: the GPU self-test (one matmul checked against a float64 reference). */
  selfTest: (m = 37, n = 29, k = 45, seed = null) => send("selfTest", [m, n, k, seed]),
  /** Diagnostics: destroy the engine's GPU device as a driver reset would (resolves to
   *  {reason}); the next request fails with DeviceLostError and init() recovers. */
  loseDevice: () => send("loseDevice", []),
};

export default LocalLLM;

if (hasWindow) {
  window.LocalLLM = LocalLLM;
  start();                             // the engine boots while the page renders
}
