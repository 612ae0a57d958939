// Registers the service worker that precaches the app (see build.py: dist/sw.js) so the page,
// Pyodide and PyScript load offline after the first visit.
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("./sw.js", { scope: "./" }).catch((err) => {
    console.warn("LocalLLM: service worker registration failed; offline use is unavailable", err);
  });
}
