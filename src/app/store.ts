/**
 * Opens the session store `--store` names, and this node's id: `memory`, `sqlite` (a file in --data-dir) or a
 * `postgres://` URL. The node id is `--node-id`, or one generated on first start and kept in --data-dir/node-id,
 * so a restarted node recognises the sessions it was running.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ServerConfig } from '../config.js';
import { MemorySessionStore } from '../state/memory-session-store.js';
import type { SessionStore } from '../state/session-store.js';

export const SQLITE_FILE = 'aipd.sqlite';

export async function openStore(config: ServerConfig): Promise<SessionStore> {
  const common = { maxEventsPerSession: config.eventLogMax, groupCommitMs: config.groupCommitMs };
  let store: SessionStore;
  if (config.store === 'memory') store = new MemorySessionStore({ maxEventsPerSession: config.eventLogMax, maxEndedBytes: config.memoryStoreEndedBytes });
  else if (config.store === 'sqlite') {
    const { SqliteSessionStore } = await import('../state/sqlite-session-store.js');
    mkdirSync(resolve(config.dataDir), { recursive: true });
    store = new SqliteSessionStore({ path: join(resolve(config.dataDir), SQLITE_FILE), ...common });
  } else {
    const { PostgresSessionStore } = await import('../state/postgres-session-store.js');
    store = new PostgresSessionStore({ connectionString: config.store, poolSize: 10, ...common });
  }
  await store.open();
  return store;
}

/** `--node-id`, or the id kept in --data-dir (generated once); a memory store gets a fresh one each run. */
export function nodeIdFor(config: ServerConfig): string {
  if (config.nodeId) return config.nodeId;
  if (config.store === 'memory') return `node-${randomUUID()}`;
  const dir = resolve(config.dataDir);
  const file = join(dir, 'node-id');
  try {
    const id = readFileSync(file, 'utf8').trim();
    if (id) return id;
  } catch {
    // first start
  }
  mkdirSync(dir, { recursive: true });
  const id = `node-${randomUUID()}`;
  writeFileSync(file, `${id}\n`);
  return id;
}
