/**
 * Opens the session store `--store` names, and this node's id: `memory`, `sqlite` (a file in --data-dir) or a
 * `postgres://` URL. The node id is `--node-id`, or one generated on first start and kept in --data-dir/node-id,
 * so a restarted node recognises the sessions it was running.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, type ServerConfig } from '../config.js';
import { MemorySessionStore } from '../state/memory-session-store.js';
import type { SessionStore } from '../state/session-store.js';
import type { MigrationProgress } from '../state/sql-schema.js';
import type { Logger } from '../logger.js';

export const SQLITE_FILE = 'aipd.sqlite';

export async function openStore(config: ServerConfig, log: Logger): Promise<SessionStore> {
  const common = {
    maxEventsPerSession: config.eventLogMax,
    groupCommitMs: config.groupCommitMs,
    onMigration: (p: MigrationProgress) => logMigration(log, p),
  };
  let store: SessionStore;
  if (config.store === 'memory')
    store = new MemorySessionStore({
      maxEventsPerSession: config.eventLogMax,
      maxEndedBytes: config.memoryStoreEndedBytes,
    });
  else if (config.store === 'sqlite') {
    const { SqliteSessionStore } = await import('../state/sqlite-session-store.js');
    mkdirSync(resolve(config.dataDir), { recursive: true });
    store = new SqliteSessionStore({
      path: join(resolve(config.dataDir), SQLITE_FILE),
      checkpointMs: config.sqliteCheckpointMs,
      checkpointNice: config.sqliteCheckpointNice,
      checkpointFollowUpMs: config.sqliteCheckpointFollowUpMs,
      checkpointFollowUps: config.sqliteCheckpointFollowUps,
      walMaxBytes: config.sqliteWalMaxBytes,
      onCheckpointFailure: (err) =>
        log.warn({ err }, "the WAL checkpoint worker failed; SQLite's own checkpoints are back on"),
      ...common,
    });
  } else {
    const { PostgresSessionStore } = await import('../state/postgres-session-store.js');
    store = new PostgresSessionStore({
      connectionString: config.store,
      poolSize: 10,
      idleInTransactionMs: config.storeIdleInTransactionMs,
      ...common,
    });
  }
  await store.open();
  return store;
}

/**
 * A schema upgrade is logged as it starts and as each version is applied, since on a large database it can hold
 * the start for minutes; a new database's schema is made quietly (debug).
 */
function logMigration(log: Logger, p: MigrationProgress): void {
  const level = p.from === 0 ? 'debug' : 'info';
  if (p.version === null)
    log[level](
      { from: p.from, to: p.to },
      p.from === 0
        ? 'creating the session store schema'
        : `upgrading the session store schema from version ${p.from} to ${p.to}; a large database can take minutes`,
    );
  else
    log[level](
      { version: p.version, ms: Math.round(p.ms ?? 0) },
      `session store schema at version ${p.version}`,
    );
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

/**
 * Claims --data-dir for this process (a pid file), so two servers never share a node id and mark each other's
 * sessions crashed. A pid file whose process is gone is taken over. Returns the release function.
 */
export function lockDataDir(config: ServerConfig): () => void {
  if (config.store === 'memory') return () => undefined;
  const dir = resolve(config.dataDir);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'aipd.pid');
  let holder = 0;
  try {
    holder = Number(readFileSync(file, 'utf8').trim());
  } catch {
    // free
  }
  if (holder > 0 && holder !== process.pid && alive(holder)) {
    throw new ConfigError(
      `--data-dir: '${dir}' is in use by another aipd (pid ${holder}); give each server its own data dir`,
    );
  }
  writeFileSync(file, `${process.pid}\n`);
  return () => {
    try {
      if (Number(readFileSync(file, 'utf8').trim()) === process.pid) rmSync(file);
    } catch {
      // already gone
    }
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
