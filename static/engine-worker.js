// LocalLLM engine worker (a module worker started by static/local-llm.js). It loads the vendored
// Pyodide and the app's Python (py/localllm.zip, built by build.py), then hands every message to
// app/runtime/worker.py, which runs app.runtime.LocalLLM here, off the page's thread. Messages
// that arrive while Python starts are kept and delivered in order. Protocol: static/local-llm.js.
//
// Everything is fetched from the site this file is served from (<site>/static/engine-worker.js);
// the engine itself only reaches that origin and the model hosts the catalog names.

const SITE = new URL("../", import.meta.url).href;
const early = [];
let deliver = null;                    // Python's on_message(json) once it is up

// File/Blob arguments (importModelFile) are not JSON: each is kept here under "<id>:<n>" and
// replaced by {$blob: key}; Python takes it with takeBlob(key) (app/runtime/worker.py).
const blobs = new Map();
const takeBlob = (key) => {
  const blob = blobs.get(key);
  blobs.delete(key);
  return blob;                         // undefined (Python None) when unknown
};

function setBlobsAside(data) {
  if (!data || typeof data !== "object") return data;
  let n = 0;
  const swap = (v) => {
    if (!(v instanceof Blob)) return v;
    const key = `${data.id}:${n++}`;
    blobs.set(key, v);
    return { $blob: key };
  };
  const args = Array.isArray(data.args) ? data.args.map(swap) : data.args;
  const kwargs = data.kwargs && typeof data.kwargs === "object"
    ? Object.fromEntries(Object.entries(data.kwargs).map(([k, v]) => [k, swap(v)])) : data.kwargs;
  return { ...data, args, kwargs };
}

self.onmessage = ({ data }) => {
  let text;
  try {
    text = JSON.stringify(setBlobsAside(data));
  } catch (err) {
    self.postMessage({ id: data.id, error: { name: "TypeError",
                       message: `the arguments of ${data.op} are not JSON data: ${err.message}` } });
    return;
  }
  if (deliver) deliver(text);
  else early.push(text);
};

// Python posts JSON text; the page receives plain objects (null stays null).
const post = (text) => self.postMessage(JSON.parse(text));

async function boot() {
  const { loadPyodide } = await import(new URL("vendor/pyodide/pyodide.mjs", SITE).href);
  const [py, zip, versions] = await Promise.all([
    loadPyodide({ indexURL: new URL("vendor/pyodide/", SITE).href }),
    fetch(new URL("py/localllm.zip", SITE)).then((r) => {
      if (!r.ok) throw new Error(`py/localllm.zip answered HTTP ${r.status}`);
      return r.arrayBuffer();
    }),
    // Versions of the vendored packages, for getRuntimeInfo (optional: null when absent).
    fetch(new URL("versions.json", SITE)).then((r) => (r.ok ? r.text() : null), () => null),
  ]);
  py.unpackArchive(zip, "zip", { extractDir: "/home/pyodide" });
  py.runPython("import sys\nif '/home/pyodide' not in sys.path: sys.path.insert(0, '/home/pyodide')");
  deliver = py.pyimport("app.runtime.worker").start(post, SITE, versions, takeBlob);
  for (const text of early.splice(0)) deliver(text);
}

boot().catch((err) => {
  self.postMessage({ fatal: { name: "EngineStartError",
                              message: `the engine could not start: ${err && err.message || err}. ` +
                                       "Reload the page; if it persists, the site's files are incomplete " +
                                       "(rebuild with build.py)." } });
});
