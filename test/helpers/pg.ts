/**
 * A throwaway PostgreSQL database for one test file: `createTestDatabase()` creates `aipd_test_<random>` on the
 * server at AIPD_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres, as CI starts it), and `drop()`
 * removes it. When the server cannot be reached it throws an error saying so: the tests fail, they never skip.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG_ADMIN_URL = process.env.AIPD_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  readonly name: string;
  /** Connects to the database. */
  readonly url: string;
  /** Connects to the database with `schema` as the search path (for a fresh set of tables per test). */
  urlWithSchema(schema: string): string;
  /** Runs one statement in the database. */
  query(sql: string, values?: unknown[]): Promise<pg.QueryResult>;
  drop(): Promise<void>;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
  } catch (err) {
    const where = new URL(PG_ADMIN_URL);
    where.password = '';
    throw new Error(
      `PostgreSQL is not reachable at ${where.host} (${(err as Error).message}). The PostgreSQL tests need it: ` +
        'start it (.ci/run does: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start), ' +
        'or set AIPD_TEST_PG_URL to a server where this user may create databases.',
      { cause: err },
    );
  }
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `aipd_test_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  const url = u.toString();
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {});
  return {
    name,
    url,
    urlWithSchema(schema) {
      const s = new URL(url);
      s.searchParams.set('options', `-c search_path=${schema}`);
      return s.toString();
    },
    query: (sql, values) => pool.query(sql, values),
    async drop() {
      await pool.end();
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}
