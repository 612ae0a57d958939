// LocalLLM weight store: the reader worker (started by static/store.js's readChunk, which says why).
//
// Messages in:  {id, db, key, index, verify}   read chunk `index` of file `key` from database `db`
//               {close: db}                    close this worker's connection to `db`
//               {id, ping: true}               answered {id, data: null, meta: "null"}
// Messages out: {id, data: Uint8Array | null, meta: JSON string}   as store.js's readChunkHere;
//               the chunk's ArrayBuffer is transferred, not copied
//               {id, error: {name, message}}
import { closeDB, openDB, readChunkHere } from "./store.js";

self.onmessage = async ({ data: m }) => {
  if (m.close !== undefined) {
    closeDB(m.close);
    return;
  }
  if (m.ping) {
    self.postMessage({ id: m.id, data: null, meta: "null" });
    return;
  }
  try {
    const db = await openDB(m.db);
    // Step aside when the page deletes or upgrades the database: reopened on the next read.
    db.onversionchange = () => closeDB(m.db);
    const r = await readChunkHere(db, m.key, m.index, m.verify);
    self.postMessage({ id: m.id, data: r.data, meta: r.meta }, r.data ? [r.data.buffer] : []);
  } catch (e) {
    self.postMessage({ id: m.id, error: { name: (e && e.name) || "IDBError", message: String(e && e.message || e) } });
  }
};
