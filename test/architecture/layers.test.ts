/**
 * The layer rules, enforced: no folder of src/ imports a folder that imports it back; protocol/ imports nothing
 * of src/ and nothing of Node; only the uWS adapter touches uWebSockets.js; sessions and agents never see uWS
 * or msgpackr.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, cycles, folderGraph, folderOf, importsOf, sourceFiles } from './import-graph.js';

const allSrc = sourceFiles('src');
const edges = [...allSrc, ...sourceFiles('protocol')].flatMap(importsOf);

describe('folder graph', () => {
  it('reads a real graph (the parser sees imports)', () => {
    const graph = folderGraph();
    expect(graph.get('app')).toContain('server');
    expect(graph.get('server')).toContain('state');
  });

  it('has no cycle between folders', () => {
    const found = cycles(folderGraph());
    expect(found, `folder cycles: ${found.map((c) => c.join(' ↔ ')).join('; ')}`).toEqual([]);
  });

  it('finds a cycle when there is one', () => {
    const g = new Map([
      ['a', new Set(['b'])],
      ['b', new Set(['c'])],
      ['c', new Set(['a'])],
      ['d', new Set(['a'])],
    ]);
    expect(cycles(g)).toEqual([['a', 'b', 'c']]);
  });
});

describe('layers', () => {
  it('protocol/ imports nothing of src/ and no Node module', () => {
    const bad = edges
      .filter((e) => folderOf(e.from) === 'protocol' && !/gen-|json-schema/.test(e.from))
      .filter((e) => (e.to !== null && folderOf(e.to) !== 'protocol') || e.specifier.startsWith('node:'));
    expect(bad.map((e) => `${e.from} → ${e.specifier}`)).toEqual([]);
  });

  it('only src/transport/uws*.ts imports uWebSockets.js', () => {
    const users = edges.filter((e) => e.specifier === 'uWebSockets.js').map((e) => e.from);
    const adapter = (f: string): boolean =>
      dirname(f) === join('src', 'transport') && /^uws(-[a-z0-9-]+)?\.ts$/.test(basename(f));
    expect(users).toContain(join('src', 'transport', 'uws.ts'));
    expect(users.filter((f) => !adapter(f))).toEqual([]);
  });

  it('sessions and agents never import uWS or msgpackr', () => {
    const bad = edges.filter(
      (e) =>
        ['session', 'agents'].includes(folderOf(e.from) ?? '') &&
        ['uWebSockets.js', 'msgpackr'].includes(e.specifier),
    );
    expect(bad).toEqual([]);
  });

  it('server and http reach clients only through the directory (no `.conn`)', () => {
    const offenders = allSrc
      .filter((f) => ['server', 'http'].includes(folderOf(f) ?? ''))
      .filter((f) => /\.conn\b/.test(readFileSync(join(ROOT, f), 'utf8')));
    expect(offenders).toEqual([]);
  });
});
