/**
 * The knobs of the `llm` agent (src/agents/llm/, README "Natural-language tasks"), kept apart from config.ts as the
 * cluster and SSM knobs are: the zod fields spread into ServerConfig and the flags spread into its flag table.
 */
import { z } from 'zod';

const positiveMs = z.number().int().positive();

export const LLM_CONFIG = {
  /**
   * Base URL of an OpenAI-compatible chat-completions API (`…/v1`). With --llm-model it makes the `llm` agent the
   * default for requests that are not plans.
   */
  llmBaseUrl: z
    .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
    .refine(
      (u) => {
        const p = new URL(u);
        return p.username === '' && p.password === '';
      },
      {
        error:
          'must not contain credentials (user:password@): give the key with AIPD_LLM_API_KEY or --llm-api-key',
      },
    )
    .optional(),
  /** The model name the endpoint knows (e.g. `gpt-4o-mini`, `qwen2.5:7b`). */
  llmModel: z.string().min(1).optional(),
  /** API key for the endpoint; prefer the env var AIPD_LLM_API_KEY (flags show in `ps`). Never logged. */
  llmApiKey: z.string().min(1).optional(),
  /** How the key is sent: `bearer` (Authorization: Bearer, OpenAI and most) or `api-key` (Azure OpenAI). */
  llmAuthHeader: z.enum(['bearer', 'api-key']).default('bearer'),
  /** Model turns one task may take before it ends failed. */
  llmMaxSteps: z.number().int().positive().default(50),
  /** Tokens (prompt + completion over all calls) one task may use before it ends failed; 0 for no limit. */
  llmTokenBudget: z.number().int().min(0).default(1_000_000),
  /** Time one HTTP attempt at the endpoint may take. */
  llmTimeoutMs: positiveMs.default(120_000),
  /** Sampling temperature sent with every call. */
  llmTemperature: z.number().min(0).max(2).default(0),
  /** Largest tool result fed back to the model, in bytes (the rest is cut, and the cut said). */
  llmToolResultMaxBytes: z
    .number()
    .int()
    .min(256)
    .default(16 * 1024),
  /** Largest answer body read from the endpoint, in bytes; a larger one fails the call (LLM_BAD_RESPONSE). */
  llmMaxResponseBytes: z
    .number()
    .int()
    .min(4 * 1024)
    .default(4 * 1024 * 1024),
  /** Tool calls one model turn may ask for; more end the task (LLM_TOO_MANY_TOOL_CALLS). */
  llmMaxToolCalls: z.number().int().min(1).max(10_000).default(64),
  /** Largest conversation sent to the endpoint, in bytes of JSON; a larger one ends the task. */
  llmMaxConversationBytes: z
    .number()
    .int()
    .min(64 * 1024)
    .default(16 * 1024 * 1024),
  /** Retries of a call after a 408, 429, 5xx or a network error. */
  llmRetries: z.number().int().min(0).max(20).default(4),
  /** First retry delay; it doubles per retry, with jitter. A Retry-After header replaces it. */
  llmRetryBaseMs: positiveMs.default(1_000),
  /** Longest wait before one retry; a Retry-After asking for more fails the call. */
  llmRetryMaxMs: positiveMs.default(60_000),
};

export const LLM_FLAGS = {
  'llm-base-url': { key: 'llmBaseUrl', type: 'string' },
  'llm-model': { key: 'llmModel', type: 'string' },
  'llm-api-key': { key: 'llmApiKey', type: 'string' },
  'llm-auth-header': { key: 'llmAuthHeader', type: 'string' },
  'llm-max-steps': { key: 'llmMaxSteps', type: 'int' },
  'llm-token-budget': { key: 'llmTokenBudget', type: 'int' },
  'llm-timeout-ms': { key: 'llmTimeoutMs', type: 'int' },
  'llm-temperature': { key: 'llmTemperature', type: 'number' },
  'llm-tool-result-max-bytes': { key: 'llmToolResultMaxBytes', type: 'int' },
  'llm-max-response-bytes': { key: 'llmMaxResponseBytes', type: 'int' },
  'llm-max-tool-calls': { key: 'llmMaxToolCalls', type: 'int' },
  'llm-max-conversation-bytes': { key: 'llmMaxConversationBytes', type: 'int' },
  'llm-retries': { key: 'llmRetries', type: 'int' },
  'llm-retry-base-ms': { key: 'llmRetryBaseMs', type: 'int' },
  'llm-retry-max-ms': { key: 'llmRetryMaxMs', type: 'int' },
} as const;
