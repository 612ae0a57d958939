// LocalLLM settings store: small JSON settings kept in this origin's IndexedDB, on this device
// (database "localllm-settings", object store "settings", records {key, json}). Used by the
// engine worker for the remote provider's settings (app/runtime/remote_browser.py); the API key
// stored there is sent only to the remote server the user configured, never anywhere else.
// Values cross as JSON text both ways ("null" when a key is missing), as in static/store.js.

const DB_NAME = "localllm-settings";
const DB_VERSION = 1;
let dbPromise = null;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function openDB() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, DB_VERSION);
      req.onupgradeneeded = () => {
        if (!req.result.objectStoreNames.contains("settings")) {
          req.result.createObjectStore("settings", { keyPath: "key" });
        }
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => { dbPromise = null; reject(req.error); };
      req.onblocked = () => { dbPromise = null; reject(new DOMException(`${DB_NAME} is blocked by another tab`, "IDBError")); };
    });
  }
  return dbPromise;
}

/** The JSON text stored under `key`, or "null". */
export async function getSetting(key) {
  const db = await openDB();
  const rec = await request(db.transaction("settings").objectStore("settings").get(key));
  return rec ? rec.json : "null";
}

/** Store JSON text under `key` (resolves once the transaction committed). */
export async function putSetting(key, json) {
  const db = await openDB();
  const tx = db.transaction("settings", "readwrite");
  tx.objectStore("settings").put({ key, json: String(json) });
  await new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new DOMException("transaction aborted", "AbortError"));
  });
}
