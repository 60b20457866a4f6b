/** Renders the error catalogue and close codes as markdown (docs/errors.md), so the docs list every code. */
import { CloseCode, Errors } from './errors.js';

const RANGES: [number, string][] = [
  [1000, 'Decoding a frame'],
  [1100, 'Schema validation'],
  [2000, 'Registration and identity'],
  [3000, 'Tasks and sessions'],
  [4000, 'Device info'],
  [5000, 'Server and transport'],
  [6000, 'HTTP API'],
  [7000, 'Data channels and binary transfers'],
];

/** Parameters render as `<name>`. */
const placeholders = new Proxy(
  {},
  {
    get: (_t, key) => {
      const text = `<${String(key)}>`;
      return { toString: () => text, join: () => text };
    },
  },
);

export function renderErrorDocs(): string {
  const lines = [
    '# aipd error and close codes',
    '',
    'Generated from `protocol/errors.ts` by `npm run docs:errors`; a test fails when this file drifts.',
    'The **text** is what an `error` frame carries in its `error` field (or an HTTP `detail`). Texts that UFO',
    'also sends are kept byte for byte. Codes are stable and never reused.',
    '',
    '## WebSocket close codes',
    '',
    '| close code | name |',
    '|---:|---|',
    ...Object.entries(CloseCode).map(([name, code]) => `| ${code} | ${name} |`),
    '',
    '## Error codes',
  ];
  const entries = Object.entries(Errors).sort((a, b) => a[1].code - b[1].code);
  let range = -1;
  for (const [name, spec] of entries) {
    const r = RANGES.filter(([start]) => spec.code >= start).pop();
    if (r && r[0] !== range) {
      range = r[0];
      lines.push('', `### ${r[0]}–${r[0] + 99}: ${r[1]}`, '', '| code | name | text |', '|---:|---|---|');
    }
    const text = String((spec.text as (p: unknown) => unknown)(placeholders)).replace(/\|/g, '\\|');
    lines.push(`| ${spec.code} | ${name} | ${text} |`);
  }
  return `${lines.join('\n')}\n`;
}
