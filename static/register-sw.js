// Registers the service worker that precaches the app (see build.py: dist/sw.js) so the page,
// Pyodide and PyScript load offline after the first visit, and offers new builds (docs/pwa.md).
//
// A new build's worker installs next to the running one and waits. When one is waiting this
// dispatches window CustomEvent "local-llm:update-ready" {detail: {version}} and sets
//
//   window.LocalLLMUpdate = {ready, version, apply(), check()}
//
// ready: a new version is installed and waits; version: its cache version (null until then).
// apply(): activate it and reload this page once it controls the page (the dashboard's Reload
// button). check(): ask the server for a new build now; it is also asked on load, every
// CHECK_EVERY_MS and when the tab becomes visible again.
const CHECK_EVERY_MS = 30 * 60 * 1000;
const MIN_CHECK_GAP_MS = 60 * 1000;    // visibility changes ask at most this often

const sw = navigator.serviceWorker;
let registration = null;
let waiting = null;                    // the installed worker offered to the page
let lastCheck = 0;
let reloading = false;

// The version a worker serves, asked over a MessageChannel (static/sw.js: GET_VERSION).
function workerVersion(worker) {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    const timer = setTimeout(() => resolve(null), 5000);
    channel.port1.onmessage = ({ data }) => {
      clearTimeout(timer);
      resolve(data && data.version);
    };
    worker.postMessage({ type: "GET_VERSION" }, [channel.port2]);
  });
}

async function announce(worker) {
  const version = await workerVersion(worker);
  Object.assign(window.LocalLLMUpdate, { ready: true, version });
  window.dispatchEvent(new CustomEvent("local-llm:update-ready", { detail: { version } }));
}

function offer(worker) {
  if (waiting === worker) return;
  waiting = worker;
  announce(worker);
}

function apply() {
  if (!window.LocalLLMUpdate.ready) return false;
  reloading = true;
  // Another tab may have activated it already: then this page only needs the reload.
  if (waiting && waiting.state === "installed") {
    waiting.postMessage({ type: "SKIP_WAITING" });
  } else {
    location.reload();
  }
  return true;
}

async function check() {
  lastCheck = Date.now();
  if (!registration) return;
  try {
    await registration.update();
  } catch (err) {
    // Offline or the server is down: the cached version keeps working; ask again later.
  }
}

function watch(reg) {
  registration = reg;
  // Waiting at load (installed while this or another tab was open): offer it.
  if (reg.waiting && reg.active) offer(reg.waiting);
  reg.addEventListener("updatefound", () => {
    const worker = reg.installing;
    if (!worker) return;
    worker.addEventListener("statechange", () => {
      // Installed while an older worker controls the page: it waits, so offer it. (The first
      // install has no controller and activates by itself.)
      if (worker.state === "installed" && sw.controller) offer(worker);
    });
  });
  // A registration that was already active: look for a newer build now.
  if (reg.active) check();
  setInterval(check, CHECK_EVERY_MS);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && Date.now() - lastCheck > MIN_CHECK_GAP_MS) check();
  });
}

if (sw) {
  window.LocalLLMUpdate = { ready: false, version: null, apply, check };
  let controlled = !!sw.controller;
  sw.addEventListener("controllerchange", () => {
    const wasControlled = controlled;
    controlled = true;
    if (reloading) {
      location.reload();
    } else if (wasControlled) {
      // Another tab applied an update: this page still runs the old version's code, so it
      // offers (or keeps offering) the reload; apply() now just reloads.
      waiting = null;
      if (!window.LocalLLMUpdate.ready) announce(sw.controller);
    }
    // Otherwise the first install took control: the page already runs that version.
  });
  sw.register("./sw.js", { scope: "./" }).then(watch, (err) => {
    console.warn("LocalLLM: service worker registration failed; offline use is unavailable", err);
  });
} else {
  window.LocalLLMUpdate = { ready: false, version: null, apply: () => false, check: async () => {} };
}
