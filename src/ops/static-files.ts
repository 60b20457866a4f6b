/**
 * Static files served from a folder that ships in the package (the dashboard's build, swagger-ui-dist): only the
 * names the folder held when first asked are served (no path from a request ever reaches the file system), each
 * read once and kept.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.woff2': 'font/woff2',
};

export interface StaticFile {
  readonly body: Uint8Array;
  readonly contentType: string;
}

export class StaticFolder {
  private names: Set<string> | null = null;
  private readonly cache = new Map<string, StaticFile>();

  constructor(readonly dir: string) {}

  /** Whether the folder exists and holds `index.html` (or any file, for an asset folder). */
  has(name: string): boolean {
    return this.list().has(name);
  }

  get(name: string): StaticFile | null {
    if (!this.has(name)) return null;
    let f = this.cache.get(name);
    if (!f) {
      f = {
        body: readFileSync(join(this.dir, name)),
        contentType: TYPES[extname(name)] ?? 'application/octet-stream',
      };
      this.cache.set(name, f);
    }
    return f;
  }

  private list(): Set<string> {
    if (!this.names) {
      try {
        this.names = new Set(
          readdirSync(this.dir, { withFileTypes: true })
            .filter((e) => e.isFile())
            .map((e) => e.name),
        );
      } catch {
        return new Set(); // not built (yet): looked for again next time
      }
    }
    return this.names;
  }
}

/** The package's root folder (the one with package.json), from this file's place in src/ or dist/src/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      readFileSync(join(dir, 'package.json'));
      return dir;
    } catch {
      dir = dirname(dir);
    }
  }
  throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
}
