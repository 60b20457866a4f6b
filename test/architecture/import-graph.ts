/** Reads the import graph of src/ and protocol/ from the source text (static and dynamic imports). */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');

export interface ImportEdge {
  readonly from: string; // file, relative to ROOT
  readonly specifier: string;
  /** The imported file relative to ROOT, or null for a package. */
  readonly to: string | null;
}

const IMPORT_RE =
  /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g;

export function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const path = join(dir, name);
    if (statSync(join(ROOT, path)).isDirectory()) out.push(...sourceFiles(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

export function importsOf(file: string): ImportEdge[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const edges: ImportEdge[] = [];
  for (const m of text.matchAll(IMPORT_RE)) {
    const specifier = (m[1] ?? m[2] ?? m[3])!;
    const to = specifier.startsWith('.')
      ? relative(ROOT, resolve(ROOT, dirname(file), specifier)).replace(/\.js$/, '.ts')
      : null;
    edges.push({ from: file, specifier, to });
  }
  return edges;
}

/** The folder a src/ file belongs to: `server` for src/server/x.ts; a file directly in src/ is its own node. */
export function folderOf(file: string): string | null {
  const parts = file.split(sep);
  if (parts[0] === 'protocol') return 'protocol';
  if (parts[0] !== 'src') return null;
  return parts.length > 2 ? parts[1]! : parts[1]!.replace(/\.ts$/, '');
}

/** Folder → folders it imports. */
export function folderGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const file of [...sourceFiles('src'), ...sourceFiles('protocol')]) {
    const from = folderOf(file)!;
    if (!graph.has(from)) graph.set(from, new Set());
    for (const e of importsOf(file)) {
      const to = e.to ? folderOf(e.to) : null;
      if (to && to !== from) graph.get(from)!.add(to);
    }
  }
  return graph;
}

/** Strongly connected components with more than one folder: each is a cycle. */
export function cycles(graph: Map<string, Set<string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}
