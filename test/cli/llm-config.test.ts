/** The --llm-* knobs: flags, env and config file; their checks; and the agents they give a server. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { agentRegistryFor } from '../../src/app/agents.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { planRequest } from '../helpers/aip-server.js';

const BASE = ['--llm-base-url', 'http://localhost:11434/v1', '--llm-model', 'qwen2.5:7b'];

function configError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('--llm-* configuration', () => {
  it('reads the flags, with the API key from AIPD_LLM_API_KEY, and has named defaults', () => {
    const c = loadConfig([...BASE, '--llm-temperature', '0.7', '--llm-max-steps', '12'], {
      AIPD_LLM_API_KEY: 'sk-env',
      AIPD_LLM_TIMEOUT_MS: '5000',
    });
    expect(c).toMatchObject({
      llmBaseUrl: 'http://localhost:11434/v1',
      llmModel: 'qwen2.5:7b',
      llmApiKey: 'sk-env',
      llmTemperature: 0.7,
      llmMaxSteps: 12,
      llmTimeoutMs: 5000,
      llmAuthHeader: 'bearer',
      llmTokenBudget: 1_000_000,
      llmToolResultMaxBytes: 16 * 1024,
      llmRetries: 4,
    });
  });

  it('reads them from a config file too', () => {
    const dir = mkdtempSync(join(tmpdir(), 'aipd-llm-config-'));
    try {
      const file = join(dir, 'aipd.json');
      writeFileSync(
        file,
        JSON.stringify({ llmBaseUrl: 'https://api.openai.com/v1', llmModel: 'gpt-4o-mini' }),
      );
      expect(loadConfig(['--config', file], {})).toMatchObject({ llmModel: 'gpt-4o-mini' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses half a configuration and bad values, naming the flag', () => {
    expect(configError(() => loadConfig(['--llm-base-url', 'http://x/v1'], {}))).toBe(
      '--llm-base-url: needs --llm-model (the model to ask)',
    );
    expect(configError(() => loadConfig(['--llm-base-url', 'ftp://x', '--llm-model', 'm'], {}))).toBe(
      '--llm-base-url: must be an http:// or https:// URL',
    );
    expect(
      configError(() => loadConfig(['--llm-base-url', 'https://u:sk-SECRET@x/v1', '--llm-model', 'm'], {})),
    ).toBe(
      '--llm-base-url: must not contain credentials (user:password@): give the key with AIPD_LLM_API_KEY or --llm-api-key',
    );
    expect(configError(() => loadConfig([...BASE, '--llm-temperature', '3'], {}))).toMatch(
      /^--llm-temperature: /,
    );
    expect(configError(() => loadConfig([...BASE, '--llm-auth-header', 'cookie'], {}))).toMatch(
      /^--llm-auth-header: /,
    );
  });

  it('makes the llm agent the default for requests that are not plans; plans stay on the plan agent', () => {
    const without = agentRegistryFor(loadConfig([], {}));
    expect(without.select('list the files in /tmp')).toBeNull();
    const withLlm = agentRegistryFor(loadConfig(BASE, {}));
    expect(withLlm.select('list the files in /tmp')?.name).toBe('llm');
    expect(withLlm.select(planRequest(1))?.name).toBe('plan');
  });
});
