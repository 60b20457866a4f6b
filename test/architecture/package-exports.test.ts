/**
 * The public package surface: `aipd/client`, `aipd/protocol` and `aipd/server` resolve through package.json
 * `exports` (Node's self-reference, as a dependent project would import them) to built code with type declarations.
 * Needs the build that `npm ci` (prepare) and `npm run build` make.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './import-graph.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  exports: Record<string, { types: string; default: string } | string>;
};

describe('package exports', () => {
  it('resolves aipd/client, aipd/protocol and aipd/server to working modules', () => {
    const script = `
      const client = await import('aipd/client');
      const protocol = await import('aipd/protocol');
      const server = await import('aipd/server');
      console.log(JSON.stringify([typeof client.AipDeviceClient, typeof client.AipControllerClient, protocol.CloseCode.SLOW_CONSUMER, typeof server.startServer]));
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(JSON.parse(out.trim())).toEqual(['function', 'function', 4008, 'function']);
  });

  it('ships type declarations for every export', () => {
    for (const [name, target] of Object.entries(pkg.exports)) {
      if (typeof target === 'string') continue;
      expect(existsSync(join(ROOT, target.types)), `${name} types at ${target.types}`).toBe(true);
      expect(existsSync(join(ROOT, target.default)), `${name} code at ${target.default}`).toBe(true);
    }
  });
});
