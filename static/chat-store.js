// LocalLLM conversations: the dashboard's chat history, on this device only (IndexedDB database
// "localllm-chats", object store "conversations", records {id, json}). app/ui/conversations.py
// (BrowserChatStore) is the only caller; values cross as JSON text.

const DB_NAME = "localllm-chats";
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
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => req.result.createObjectStore("conversations", { keyPath: "id" });
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => { dbPromise = null; reject(req.error); };
      req.onblocked = () => { dbPromise = null; reject(new DOMException(`${DB_NAME} is blocked by another tab`, "IDBError")); };
    });
  }
  return dbPromise;
}

async function store(mode) {
  return (await openDB()).transaction("conversations", mode).objectStore("conversations");
}

export async function loadAll() {
  const rows = await request((await store("readonly")).getAll());
  return "[" + rows.map((r) => r.json).join(",") + "]";
}

export async function put(json) {
  const { id } = JSON.parse(json);
  await request((await store("readwrite")).put({ id, json }));
}

export async function remove(id) {
  await request((await store("readwrite")).delete(id));
}
