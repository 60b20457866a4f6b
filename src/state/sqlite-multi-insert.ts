/**
 * A multi-row INSERT of fixed-width rows for better-sqlite3: the rows go in as few statements as the chunk sizes
 * allow (one per chunk, largest first), each size prepared once. One statement of n rows costs far less than n
 * statements of one (the SQLite store's event rows and its log index rows).
 */
import type Database from 'better-sqlite3';

export class MultiRowInsert {
  private readonly statements = new Map<number, Database.Statement>();
  private readonly row: string;

  constructor(
    private readonly db: Database.Database,
    /** `INSERT INTO table (a, b, …)`: the statement up to VALUES. */
    private readonly head: string,
    /** Values per row. */
    private readonly width: number,
    /** Rows per statement that may be used, largest first; must end with 1. */
    private readonly chunks: readonly number[],
  ) {
    this.row = `(${Array.from({ length: width }, () => '?').join(', ')})`;
  }

  /** Inserts `values`: `width` values per row, rows one after another. */
  run(values: readonly unknown[]): void {
    const { width } = this;
    let at = 0;
    let left = values.length / width;
    while (left > 0) {
      const n = this.chunks.find((c) => c <= left)!;
      this.statement(n).run(n * width === values.length ? values : values.slice(at, at + n * width));
      at += n * width;
      left -= n;
    }
  }

  private statement(n: number): Database.Statement {
    let stmt = this.statements.get(n);
    if (!stmt) {
      stmt = this.db.prepare(`${this.head} VALUES ${Array.from({ length: n }, () => this.row).join(', ')}`);
      this.statements.set(n, stmt);
    }
    return stmt;
  }
}
