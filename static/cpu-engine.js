// The CPU backend's JS half (app/cpu/wllama.py is the Python half): llama.cpp in WebAssembly
// through @wllama/wllama, vendored by build.py into vendor/wllama-wllama/ (index.js, wllama.wasm).
// It runs inside the engine worker; wllama starts its own worker (and, when the page is
// cross-origin isolated, its thread pool) from there.
//
// Python passes options and receives results as JSON text, so no JS proxy outlives a call except
// the engine and stream handles it holds on purpose. Bulk bytes (the model) stay in JS: a Blob
// built from the cached chunks, which wllama reads in slices into its heap.

let wllamaModule = null;
const vendorDir = (site) => new URL("vendor/wllama-wllama/", site).href;

/** Load a GGUF Blob. opts: LoadModelParams (n_ctx, n_threads, ...). -> {engine, info: JSON}. */
export async function open(site, blob, optsJson) {
  wllamaModule ??= import(vendorDir(site) + "index.js");
  const { Wllama } = await wllamaModule;
  const w = new Wllama({ default: vendorDir(site) + "wllama.wasm" }, { suppressNativeLog: true });
  try {
    await w.loadModel([blob], { ...JSON.parse(optsJson), n_gpu_layers: 0 });
  } catch (err) {
    await w.exit().catch(() => {});
    throw err;
  }
  const ctx = w.getLoadedContextInfo();
  const info = {
    multithread: w.isMultithread(), threads: w.getNumThreads(), n_ctx: ctx.n_ctx,
    n_vocab: ctx.n_vocab, eog: ctx.list_tokens_eog ?? [], bos: w.getBOS(), eos: w.getEOS(),
    eot: w.getEOT(), add_bos: w.mustAddBosToken(),
    llama_cpp: typeof Wllama.getLibllamaVersion === "function" ? Wllama.getLibllamaVersion() : null,
    cross_origin_isolated: Boolean(self.crossOriginIsolated),
    hardware_concurrency: navigator.hardwareConcurrency || 1,
  };
  return { engine: w, info: JSON.stringify(info) };
}

/** Start a streamed raw completion (llama.cpp server fields). -> {next(): JSON | null, abort()}. */
export function start(engine, optsJson) {
  const ctrl = new AbortController();
  const pending = engine.createCompletion({ ...JSON.parse(optsJson), stream: true,
                                            abortSignal: ctrl.signal });
  let it = null;
  return {
    abort: () => ctrl.abort(),
    async next() {
      if (it === null) it = (await pending)[Symbol.asyncIterator]();
      const r = await it.next();
      return r.done ? null : JSON.stringify(r.value);
    },
  };
}

export async function exit(engine) {
  await engine.exit();
}
