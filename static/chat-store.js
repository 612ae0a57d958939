// LocalLLM conversations: the dashboard's chat history, on this device only (IndexedDB database
// "localllm-chats", object store "conversations", records {id, json}). app/ui/conversations.py
// (BrowserChatStore) is the only caller; values cross as JSON text.
import { jsonTable, request } from "./json-db.js";

const conversations = jsonTable("localllm-chats", "conversations", "id");

export async function loadAll() {
  const rows = await request((await conversations()).getAll());
  return "[" + rows.map((r) => r.json).join(",") + "]";
}

export async function put(json) {
  const { id } = JSON.parse(json);
  await request((await conversations("readwrite")).put({ id, json }));
}

export async function remove(id) {
  await request((await conversations("readwrite")).delete(id));
}
