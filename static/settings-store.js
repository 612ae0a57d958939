// LocalLLM settings store: small JSON settings kept in this origin's IndexedDB, on this device
// (database "localllm-settings", object store "settings", records {key, json}). Used by the
// engine worker for the remote provider's settings (app/runtime/remote_browser.py) and the
// user's models (app/runtime/browser_platform.py); the API key stored there is sent only to the
// remote server the user configured, never anywhere else. Values cross as JSON text both ways
// ("null" when a key is missing), as in static/store.js.
import { committed, jsonTable, request } from "./json-db.js";

const settings = jsonTable("localllm-settings", "settings", "key");

/** The JSON text stored under `key`, or "null". */
export async function getSetting(key) {
  const rec = await request((await settings()).get(key));
  return rec ? rec.json : "null";
}

/** Store JSON text under `key` (resolves once the transaction committed). */
export async function putSetting(key, json) {
  const table = await settings("readwrite");
  table.put({ key, json: String(json) });
  await committed(table.transaction);
}
