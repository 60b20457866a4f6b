/** The device's tools as functions, argument checks, and tool messages cut to their byte budget. */
import { describe, expect, it } from 'vitest';
import type { Result } from '../../../protocol/index.js';
import { truncateUtf8 } from '../../../src/lib/truncate.js';
import {
  chatTools,
  checkArguments,
  listToolsActions,
  toolMessageText,
  toolsFromListing,
} from '../../../src/agents/llm/tools.js';

const ok = (result: unknown): Result => ({
  status: 'success',
  result,
  error: null,
  namespace: null,
  call_id: null,
});
const bad = (error: string): Result => ({
  status: 'failure',
  result: null,
  error,
  namespace: null,
  call_id: null,
});
const info = (tool_name: string, tool_type = 'action', extra: Record<string, unknown> = {}) => ({
  tool_key: `${tool_type}::${tool_name}`,
  tool_name,
  tool_type,
  namespace: 'NS',
  ...extra,
});

describe('tool listing', () => {
  it('asks for each tool type, as UFO agents do', () => {
    expect(listToolsActions()).toEqual([
      { tool_name: 'list_tools', tool_type: 'action', parameters: { tool_type: 'action' } },
      { tool_name: 'list_tools', tool_type: 'data_collection', parameters: { tool_type: 'data_collection' } },
    ]);
  });

  it('reads both lists, leaves meta-tools out, and makes clashing names unique', () => {
    const tools = toolsFromListing([
      ok([
        info('click', 'action', {
          description: 'Click',
          input_schema: { properties: { x: { type: 'integer' } } },
        }),
        info('list_tools'),
        info('finish'),
      ]),
      ok([
        info('click', 'data_collection'),
        info('screenshot', 'data_collection', { meta: { is_meta: true } }),
      ]),
    ]);
    expect(tools).toEqual([
      {
        name: 'click',
        tool_name: 'click',
        tool_type: 'action',
        description: 'Click',
        parameters: { type: 'object', properties: { x: { type: 'integer' } } },
      },
      {
        name: 'action__finish',
        tool_name: 'finish',
        tool_type: 'action',
        description: '',
        parameters: { type: 'object', properties: {} },
      },
      {
        name: 'data_collection__click',
        tool_name: 'click',
        tool_type: 'data_collection',
        description: '',
        parameters: { type: 'object', properties: {} },
      },
    ]);
    expect(chatTools(tools as never).map((t) => t.function.name)).toEqual([
      'click',
      'action__finish',
      'data_collection__click',
      'finish',
    ]);
  });

  it('keeps what one tool type listed when the other failed, and says why when both failed', () => {
    expect(toolsFromListing([ok([info('a')]), bad('no such tool')])).toHaveLength(1);
    expect(toolsFromListing([bad('x'), ok('not a list')])).toBe(
      'action: x; data_collection: the result is not a list',
    );
  });
});

describe('checkArguments', () => {
  const schema = {
    type: 'object',
    properties: { text: { type: 'string' }, n: { type: 'integer' }, on: { type: 'boolean' } },
    required: ['text'],
  };
  it('returns the arguments when they fit the schema', () => {
    expect(checkArguments('{"text":"a","n":2,"on":true}', schema)).toEqual({ text: 'a', n: 2, on: true });
    expect(checkArguments('', {})).toEqual({});
  });
  it('says what is wrong otherwise', () => {
    expect(checkArguments('{"text":', schema)).toBe('the arguments are not valid JSON');
    expect(checkArguments('[1]', schema)).toBe('the arguments must be a JSON object');
    expect(checkArguments('{}', schema)).toBe("missing required 'text'");
    expect(checkArguments('{"text":"a","n":1.5}', schema)).toBe("'n' must be of type integer");
    // OpenAI's string form: nesting inside the string is checked before it is parsed.
    const deep = '{"text":"a","x":' + '['.repeat(1_000) + ']'.repeat(1_000) + '}';
    expect(checkArguments(deep, schema)).toBe('the arguments are nested deeper than 64 levels');
  });
});

describe('tool messages', () => {
  it('leaves data-URL images out and shows failures with their error', () => {
    expect(toolMessageText(ok('data:image/png;base64,AAAA'), 1000)).toBe('[image omitted]');
    expect(toolMessageText(ok({ shot: 'data:image/png;base64,AAAA', n: 1 }), 1000)).toBe(
      '{"shot":"[image omitted]","n":1}',
    );
    expect(toolMessageText(bad('no window'), 1000)).toBe('failure: no window');
  });

  it('cuts to the byte budget on a character boundary and says how much was left out', () => {
    expect(truncateUtf8('short', 100)).toBe('short');
    const long = 'é'.repeat(1000); // 2000 bytes
    const cut = truncateUtf8(long, 300);
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(300);
    expect(cut).not.toContain('\uFFFD');
    const kept = cut.split('…')[0]!;
    expect(cut).toMatch(/… \[truncated: (\d+) of 2000 bytes left out\]$/);
    expect(Number(/truncated: (\d+)/.exec(cut)![1]) + Buffer.byteLength(kept)).toBe(2000);
  });
});
