/**
 * The PostgreSQL store's statements: the SQL of its reads and of a flush's writes (see "Group commit" in
 * postgres-session-store.ts), the column types of the arrays they take apart, and how the pool parses what they
 * return.
 */
import pg from 'pg';
import { READ_COLUMNS, WRITE_COLUMNS } from './sql-schema.js';

/** PostgreSQL types of the write columns, for the arrays `unnest` takes apart. */
const COLUMN_TYPES: Record<string, string> = {
  context: 'json',
  checkpoint: 'json',
  runtime_metadata: 'json',
  status_history: 'json',
  task: 'json',
  version: 'integer',
};
export const typeOf = (col: string): string => COLUMN_TYPES[col] ?? 'text';

/** json as its text (rowToRecord parses it), bigint as a number (event ids stay far below 2^53). */
export const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === 114) return (v: string) => v;
    if (oid === 20) return Number;
    return pg.types.getTypeParser(oid, format) as (v: string) => unknown;
  }) as pg.CustomTypesConfig['getTypeParser'],
};

const EVENT_COLUMNS = 'id, session_id, type, at, data';

/**
 * A page of events (`where`, at most `limit`) cut before the event whose data takes the running total of JSON
 * characters past `maxChars`, the first always in; each row also carries the page's size before the cut.
 */
function sizedPage(where: string, limit: string, maxChars: string): string {
  return (
    `SELECT ${EVENT_COLUMNS}, in_page FROM (` +
    `SELECT ${EVENT_COLUMNS}, count(*) OVER () AS in_page, row_number() OVER (ORDER BY id) AS n, ` +
    'sum(length(data::text)) OVER (ORDER BY id) AS chars ' +
    `FROM (SELECT ${EVENT_COLUMNS} FROM session_events WHERE ${where} ORDER BY id LIMIT ${limit}) page` +
    `) sized WHERE n = 1 OR chars <= ${maxChars} ORDER BY id`
  );
}
export const SQL = {
  insert:
    `INSERT INTO sessions (${WRITE_COLUMNS.join(', ')}) ` +
    `SELECT * FROM unnest(${WRITE_COLUMNS.map((c, i) => `$${i + 1}::${typeOf(c)}[]`).join(', ')}) ` +
    'ON CONFLICT (id) DO NOTHING',
  delete: 'DELETE FROM sessions WHERE id = ANY($1::text[])',
  // The rows a flush writes, locked until it commits: only their versions (a flush writes what its ops give, and
  // never needs the rest, such as the `task` JSON with its plan request).
  lock: 'SELECT id, version FROM sessions WHERE id = ANY($1::text[]) FOR UPDATE',
  get: `SELECT ${READ_COLUMNS.join(', ')} FROM sessions WHERE id = $1`,
  events: `SELECT ${EVENT_COLUMNS} FROM session_events WHERE session_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
  allEvents: `SELECT ${EVENT_COLUMNS} FROM session_events WHERE id > $1 ORDER BY id LIMIT $2`,
  eventPage: sizedPage('session_id = $1 AND id > $2', '$3', '$4'),
  allEventPage: sizedPage('id > $1', '$2', '$3'),
  // The batch's events in call order (ids follow it), and the logs they push over the limit ($5).
  appendEvents: `WITH ins AS (
      INSERT INTO session_events (session_id, type, at, data)
      SELECT session_id, type, at, data
      FROM unnest($1::text[], $2::text[], $3::text[], $4::json[]) WITH ORDINALITY AS x(session_id, type, at, data, n)
      ORDER BY n
      RETURNING id, session_id
    ), counts AS (
      INSERT INTO session_logs AS l (session_id, events)
      SELECT session_id, count(*) FROM ins GROUP BY session_id
      ON CONFLICT (session_id) DO UPDATE SET events = l.events + excluded.events
      RETURNING session_id, events
    )
    SELECT (SELECT array_agg(id ORDER BY id) FROM ins) AS ids,
      (SELECT array_agg(session_id ORDER BY session_id) FROM counts WHERE events > $5) AS over_ids,
      (SELECT array_agg(events - $5 ORDER BY session_id) FROM counts WHERE events > $5) AS over_by`,
  // Deletes the oldest $2[i] events of session $1[i], and sets those logs' counts to the limit ($3).
  trim: `WITH x AS (SELECT * FROM unnest($1::text[], $2::bigint[]) AS x(session_id, n)),
    d AS (DELETE FROM session_events WHERE id IN (
      SELECT e.id FROM x CROSS JOIN LATERAL (
        SELECT id FROM session_events WHERE session_id = x.session_id ORDER BY id LIMIT x.n) e))
    UPDATE session_logs SET events = $3 WHERE session_id IN (SELECT session_id FROM x)`,
};
