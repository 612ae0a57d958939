// LocalLLM service worker. build.py replaces the placeholder below with the precache manifest
// {version, files: {path: sha256}}; version is a hash of every precached file's sha256 and of
// this worker's source, so a new build with any changed file gives a new version, a new sw.js
// and so a new cache. docs/pwa.md describes the whole flow.
//
// - install: fetch every precached file, verify its sha256, store it in cache localllm-<version>
//   (a failed install deletes its partial cache). The first install activates at once; a later
//   one WAITS while an older worker controls pages, so an open page keeps getting one
//   consistent version until it asks for the new one (static/register-sw.js: apply()).
// - message: {type: "SKIP_WAITING"} activates a waiting worker; {type: "GET_VERSION"} answers
//   {version} on the transferred port (register-sw.js names the version it offers).
// - activate: delete every other localllm-* cache, take control of open pages.
// - fetch: precached same-origin GETs are served cache-first (navigations to the site's root
//   get the cached index.html); model weights (models/ except the precached catalog.json, Range
//   requests), files outside the manifest and other origins go to the network untouched
//   (weights are cached in IndexedDB by the engine, not here).
const MANIFEST = self.__PRECACHE_MANIFEST__;
const CACHE = `localllm-${MANIFEST.version}`;
const SCOPE = new URL(self.registration.scope);

const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

async function precacheFile(cache, path, sha256) {
  const url = new URL(path, SCOPE).href;
  const resp = await fetch(url, { cache: "reload" });
  if (!resp.ok) throw new Error(`precache: ${path} answered ${resp.status}`);
  const body = await resp.arrayBuffer();
  const got = hex(await crypto.subtle.digest("SHA-256", body));
  if (got !== sha256) throw new Error(`precache: ${path} has sha256 ${got}, expected ${sha256}`);
  await cache.put(url, new Response(body, { headers: resp.headers }));
}

async function precacheAll() {
  const cache = await caches.open(CACHE);
  try {
    await Promise.all(Object.entries(MANIFEST.files).map(([p, h]) => precacheFile(cache, p, h)));
  } catch (err) {
    // A half-filled cache of a version that never activates would only take up space.
    await caches.delete(CACHE);
    throw err;
  }
}

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    await precacheAll();
    // No active worker: this is the first install, there is no older version to stay
    // consistent with. Otherwise wait for SKIP_WAITING (or for every old page to close).
    if (!self.registration.active) await self.skipWaiting();
  })());
});

self.addEventListener("message", (event) => {
  const msg = event.data || {};
  if (msg.type === "SKIP_WAITING") {
    event.waitUntil(self.skipWaiting());
  } else if (msg.type === "GET_VERSION" && event.ports[0]) {
    event.ports[0].postMessage({ version: MANIFEST.version });
  }
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith("localllm-") && key !== CACHE) await caches.delete(key);
    }
    await self.clients.claim();
  })());
});

// The manifest path a same-origin GET is answered from, or null for the network.
function precachedPath(req, url) {
  if (req.method !== "GET" || url.origin !== SCOPE.origin || req.headers.has("range")) return null;
  if (!url.pathname.startsWith(SCOPE.pathname)) return null;
  let path = url.pathname.slice(SCOPE.pathname.length);
  // The site's root is its index.html (the app shell), whatever the query says.
  if (path === "" && req.mode === "navigate") path = "index.html";
  return path in MANIFEST.files ? path : null;
}

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const path = precachedPath(req, new URL(req.url));
  if (path === null) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const cached = await cache.match(new URL(path, SCOPE).href);
    // Not there only if the browser evicted the cache: the network still has it.
    return cached || fetch(req);
  })());
});
