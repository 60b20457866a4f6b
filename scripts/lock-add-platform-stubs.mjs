#!/usr/bin/env node
// The registry mirror on our build machines serves only the linux packages of native binaries, so `npm install`
// writes a lockfile without the other platforms' optional packages, and `npm ci` then refuses it ("Missing: ...
// from lock file"). This adds an entry with the right os/cpu for each missing optional package, which `npm ci`
// skips on a non-matching platform. Run it after any change to the lockfile: node scripts/lock-add-platform-stubs.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const OS = [
  'darwin',
  'win32',
  'linux',
  'android',
  'freebsd',
  'openbsd',
  'openharmony',
  'sunos',
  'aix',
  'netbsd',
];
const CPU = {
  arm64: 'arm64',
  x64: 'x64',
  ia32: 'ia32',
  arm: 'arm',
  loong64: 'loong64',
  ppc64: 'ppc64',
  riscv64: 'riscv64',
  s390x: 's390x',
};

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const pkgs = lock.packages;
let added = 0;
for (const [key, entry] of Object.entries(pkgs)) {
  for (const [name, spec] of Object.entries(entry.optionalDependencies ?? {})) {
    const target = `node_modules/${name}`;
    const nested = `${key}/node_modules/${name}`;
    if (pkgs[target] || pkgs[nested]) continue;
    const parts = name.split('/').pop().split('-');
    const os = parts.find((p) => OS.includes(p));
    const cpu = parts.map((p) => CPU[p]).find(Boolean);
    if (!os || !cpu) throw new Error(`cannot tell the platform of ${name}; add its entry by hand`);
    const stub = { version: spec.replace(/^[\^~]/, ''), optional: true, os: [os], cpu: [cpu] };
    if (parts.includes('musl')) stub.libc = ['musl'];
    else if (parts.includes('gnu') || parts.includes('gnueabihf')) stub.libc = ['glibc'];
    pkgs[target] = stub;
    added++;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(pkgs).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))),
);
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
process.stdout.write(`added ${added} platform stubs\n`);
