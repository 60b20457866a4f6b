/** SQLite stores a test opens on files of its own, closed after each test (register `closeAll` in afterEach). */
import { SqliteSessionStore, type SqliteSessionStoreOptions } from '../../src/state/sqlite-session-store.js';

export interface SqliteStores {
  readonly openStore: (
    path: string,
    opts?: Partial<SqliteSessionStoreOptions>,
  ) => Promise<SqliteSessionStore>;
  readonly closeStore: (s: SqliteSessionStore) => Promise<void>;
  readonly closeAll: () => Promise<void>;
}

export function sqliteStores(): SqliteStores {
  const open: SqliteSessionStore[] = [];
  return {
    openStore: async (path, opts = {}) => {
      const s = new SqliteSessionStore({ ...opts, path });
      open.push(s);
      await s.open();
      return s;
    },
    closeStore: async (s) => {
      open.splice(open.indexOf(s), 1);
      await s.close();
    },
    closeAll: async () => {
      for (const s of open.splice(0)) await s.close();
    },
  };
}
