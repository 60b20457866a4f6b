/**
 * A flush's writes in the PostgreSQL store (steps 1-4 of "Group commit" in postgres-session-store.ts): the queued
 * op of each write, and the writer that applies a batch of them in the flush's transaction.
 */
import type pg from 'pg';
import { SQL, typeOf } from './postgres-statements.js';
import type { SessionEvent, UpdateResult } from './session-store.js';
import { WRITE_COLUMNS, changeColumns, decodeEvent, type EncodedEvent, type Settle } from './sql-schema.js';

type RecordOp =
  | { kind: 'create'; id: string; params: unknown[]; event: EncodedEvent }
  | { kind: 'update'; id: string; version: number; mask: number; values: unknown[]; event: EncodedEvent }
  | { kind: 'delete'; id: string; event: EncodedEvent };
export type Op = Settle & (RecordOp | { kind: 'append'; events: EncodedEvent[] });

/** Applies the batch of a flush in its transaction, on the connection the flush holds; one per store. */
export class PostgresFlushWriter {
  private readonly updateSql = new Map<number, { name: string; text: string; columns: number[] }>();

  /** `maxEvents`: events kept per session (the store's `maxEventsPerSession`). */
  constructor(private readonly maxEvents: number) {}

  /**
   * The body of a flush's transaction: locks the rows the batch writes, replays the batch on them in call order
   * (every check on its own), writes each row's outcome once, then logs the events of what applied, in call order.
   * Resolves the results of the batch's ops, in order.
   */
  async apply(client: pg.PoolClient, batch: Op[]): Promise<unknown[]> {
    const ids = new Set<string>();
    for (const op of batch) if (op.kind !== 'append') ids.add(op.id);
    const before = new Map<string, unknown[]>();
    if (ids.size > 0) {
      const res = await client.query<unknown[]>({
        name: 'aipd_lock',
        text: SQL.lock,
        values: [[...ids]],
        rowMode: 'array',
      });
      for (const [id, version] of res.rows) {
        const row = new Array<unknown>(WRITE_COLUMNS.length);
        row[0] = id;
        row[VERSION] = version;
        before.set(id as string, row);
      }
    }

    // Replay: `rows` holds each session's row (WRITE_COLUMNS) as the batch leaves it; `dirty` its changed columns.
    // A row that was in the table holds only its id, its version and what the batch changed, and only changed
    // columns are written back (a created row comes whole from its create).
    const rows = new Map<string, unknown[] | null>(before);
    const dirty = new Map<string, number>();
    /** Per op: whether it applied. */
    const done = new Array<boolean>(batch.length).fill(false);
    for (let i = 0; i < batch.length; i++) {
      const op = batch[i]!;
      if (op.kind === 'append') continue;
      const cur = rows.get(op.id) ?? null;
      if (op.kind === 'create') {
        if (cur) continue;
        rows.set(op.id, op.params);
        dirty.set(op.id, ALL_COLUMNS);
        done[i] = true;
      } else if (op.kind === 'delete') {
        if (!cur) continue;
        rows.set(op.id, null);
        dirty.set(op.id, ALL_COLUMNS);
        done[i] = true;
      } else {
        if (!cur || cur[VERSION] !== op.version) continue;
        const next = cur.slice();
        const { indexes, mask } = changedColumns(op.mask);
        for (let k = 0; k < indexes.length; k++) next[indexes[k]!] = op.values[k];
        next[VERSION] = op.version + 1;
        rows.set(op.id, next);
        dirty.set(op.id, (dirty.get(op.id) ?? 0) | mask);
        done[i] = true;
      }
    }
    await this.writeRows(client, before, rows, dirty);

    // Events of the writes that applied, in call order.
    const events: EncodedEvent[] = [];
    for (let i = 0; i < batch.length; i++) {
      const op = batch[i]!;
      if (op.kind === 'append') events.push(...op.events);
      else if (done[i]) events.push(op.event);
    }
    const eventIds = events.length > 0 ? await this.insertEvents(client, events) : [];
    let next = 0;
    const stored = (): SessionEvent => decodeEvent(eventIds[next]!, events[next++]!);
    const results = new Array<unknown>(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const op = batch[i]!;
      if (op.kind === 'append') results[i] = op.events.map(stored);
      else if (!done[i]) results[i] = null;
      else if (op.kind === 'update')
        results[i] = { version: op.version + 1, event: stored() } satisfies UpdateResult;
      else results[i] = stored();
    }
    return results;
  }

  /** Writes each session's outcome once: set-based inserts, deletes, and updates grouped by changed columns. */
  private async writeRows(
    client: pg.PoolClient,
    before: Map<string, unknown[]>,
    rows: Map<string, unknown[] | null>,
    dirty: Map<string, number>,
  ): Promise<void> {
    const inserts: unknown[][] = [];
    const deletes: string[] = [];
    const updates = new Map<number, { old: unknown[]; row: unknown[] }[]>();
    for (const [id, mask] of dirty) {
      const old = before.get(id);
      const row = rows.get(id)!;
      if (!old) {
        if (row) inserts.push(row);
      } else if (!row) deletes.push(id);
      else {
        let group = updates.get(mask);
        if (!group) updates.set(mask, (group = []));
        group.push({ old, row });
      }
    }
    const expect = async (q: pg.QueryConfig, n: number): Promise<void> => {
      const res = await client.query(q);
      if (res.rowCount !== n) throw new RaceError();
    };
    if (deletes.length > 0)
      await expect({ name: 'aipd_delete', text: SQL.delete, values: [deletes] }, deletes.length);
    if (inserts.length > 0) {
      const cols: unknown[][] = WRITE_COLUMNS.map(() => []);
      for (const row of inserts) row.forEach((v, c) => cols[c]!.push(v));
      await expect({ name: 'aipd_insert', text: SQL.insert, values: cols }, inserts.length);
    }
    for (const [mask, group] of updates) {
      const { name, text, columns } = this.updateStatement(mask);
      const values: unknown[][] = [[], [], [], ...columns.map(() => [])];
      for (const { old, row } of group) {
        values[0]!.push(row[0]);
        values[1]!.push(old[VERSION]);
        values[2]!.push(row[VERSION]);
        columns.forEach((c, k) => values[k + 3]!.push(row[c]));
      }
      await expect({ name, text, values }, group.length);
    }
  }

  /** Inserts events in order and trims the logs they overfill; their ids, in order. */
  private async insertEvents(client: pg.PoolClient, events: EncodedEvent[]): Promise<number[]> {
    const res = await client.query<unknown[]>({
      name: 'aipd_append_events',
      text: SQL.appendEvents,
      values: [
        events.map((e) => e.session_id),
        events.map((e) => e.type),
        events.map((e) => e.at),
        events.map((e) => e.data),
        this.maxEvents,
      ],
      rowMode: 'array',
    });
    const [ids, overIds, overBy] = res.rows[0]! as [string[], string[] | null, string[] | null];
    if (overIds && overBy) {
      await client.query({ name: 'aipd_trim', text: SQL.trim, values: [overIds, overBy, this.maxEvents] });
    }
    return ids.map(Number);
  }

  /** The named UPDATE that writes one set of columns (WRITE_COLUMNS indexes in `mask`) of many rows at once. */
  private updateStatement(mask: number): { name: string; text: string; columns: number[] } {
    let s = this.updateSql.get(mask);
    if (!s) {
      const columns = WRITE_COLUMNS.map((_, c) => c).filter(
        (c) => c !== 0 && c !== VERSION && (mask & (1 << c)) !== 0,
      );
      const names = columns.map((c) => WRITE_COLUMNS[c]!);
      const sets = [...names.map((c) => `${c} = v.${c}`), 'version = v.version'];
      const arrays = [
        '$1::text[]',
        '$2::integer[]',
        '$3::integer[]',
        ...names.map((c, k) => `$${k + 4}::${typeOf(c)}[]`),
      ];
      const text =
        `UPDATE sessions AS s SET ${sets.join(', ')} ` +
        `FROM unnest(${arrays.join(', ')}) AS v(id, old_version, version${names.map((c) => `, ${c}`).join('')}) ` +
        'WHERE s.id = v.id AND s.version = v.old_version';
      this.updateSql.set(mask, (s = { name: `aipd_write_${mask}`, text, columns }));
    }
    return s;
  }
}

/** A row changed under the flush by a writer outside group commit (its locks should prevent it): run it again. */
export class RaceError extends Error {
  constructor() {
    super('a session row changed during a group commit');
  }
}

/** Index of `version` in WRITE_COLUMNS. */
const VERSION = WRITE_COLUMNS.indexOf('version');
/** Every column of WRITE_COLUMNS, as a mask (a replaced row). */
const ALL_COLUMNS = (1 << WRITE_COLUMNS.length) - 1;
const changedCache = new Map<number, { indexes: number[]; mask: number }>();
/** The WRITE_COLUMNS indexes an update of this change mask sets, in `encodeChanges` order, and as a mask. */
function changedColumns(changeMask: number): { indexes: number[]; mask: number } {
  let c = changedCache.get(changeMask);
  if (!c) {
    const indexes = changeColumns(changeMask).map((name) =>
      WRITE_COLUMNS.indexOf(name as (typeof WRITE_COLUMNS)[number]),
    );
    changedCache.set(changeMask, (c = { indexes, mask: indexes.reduce((m, i) => m | (1 << i), 0) }));
  }
  return c;
}
