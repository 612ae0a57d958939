// LocalLLM service worker. build.py replaces the placeholder below with the precache manifest
// {version, files: {path: sha256}}; a new build gives a new version, hence a new cache.
//
// - install: fetch every precached file, verify its sha256, store it in cache localllm-<version>.
// - activate: delete older localllm-* caches, take control of open pages.
// - fetch: precached same-origin GETs are served cache-first; navigations fall back to the cached
//   index.html offline; model weights (models/ except the precached catalog.json, Range requests)
//   and other origins go to the network
//   untouched (weights are cached in IndexedDB by the engine, not here).
const MANIFEST = self.__PRECACHE_MANIFEST__;
const CACHE = `localllm-${MANIFEST.version}`;
const SCOPE = new URL(self.registration.scope);

const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

async function precacheAll() {
  const cache = await caches.open(CACHE);
  await Promise.all(Object.entries(MANIFEST.files).map(async ([path, sha256]) => {
    const url = new URL(path, SCOPE).href;
    const resp = await fetch(url, { cache: "reload" });
    if (!resp.ok) throw new Error(`precache: ${path} answered ${resp.status}`);
    const body = await resp.arrayBuffer();
    const got = hex(await crypto.subtle.digest("SHA-256", body));
    if (got !== sha256) throw new Error(`precache: ${path} has sha256 ${got}, expected ${sha256}`);
    await cache.put(url, new Response(body, { headers: resp.headers }));
  }));
}

self.addEventListener("install", (event) => {
  event.waitUntil(precacheAll().then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith("localllm-") && key !== CACHE) await caches.delete(key);
    }
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== SCOPE.origin) return;
  const path = url.pathname.slice(SCOPE.pathname.length);
  if (req.headers.has("range") || (path.startsWith("models/") && !(path in MANIFEST.files))) return;
  if (req.mode === "navigate") {
    event.respondWith((async () => {
      const cache = await caches.open(CACHE);
      try {
        return await fetch(req);
      } catch (err) {
        const cached = await cache.match(new URL("index.html", SCOPE).href);
        if (cached) return cached;
        throw err;
      }
    })());
    return;
  }
  if (!(path in MANIFEST.files)) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const cached = await cache.match(url.href, { ignoreSearch: true });
    return cached || fetch(req);
  })());
});
