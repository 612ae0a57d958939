// A small IndexedDB table of JSON records for this origin, on this device: one database with one
// object store whose records are {<keyPath>, json}. static/settings-store.js (the worker's
// settings) and static/chat-store.js (the page's conversations) are two such tables.

export function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export function committed(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new DOMException("transaction aborted", "AbortError"));
  });
}

/** The table `store` (keyPath `keyPath`) of database `name`, opened once; a failed or blocked
 *  open is not kept, so the next call tries again. table(mode) -> its IDBObjectStore. */
export function jsonTable(name, store, keyPath) {
  let dbPromise = null;
  const open = () => {
    if (!dbPromise) {
      dbPromise = new Promise((resolve, reject) => {
        const req = indexedDB.open(name, 1);
        req.onupgradeneeded = () => {
          if (!req.result.objectStoreNames.contains(store)) req.result.createObjectStore(store, { keyPath });
        };
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => { dbPromise = null; reject(req.error); };
        req.onblocked = () => { dbPromise = null; reject(new DOMException(`${name} is blocked by another tab`, "IDBError")); };
      });
    }
    return dbPromise;
  };
  return async (mode = "readonly") => (await open()).transaction(store, mode).objectStore(store);
}
