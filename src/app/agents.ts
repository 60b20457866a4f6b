/**
 * The agents a server runs, from its config: always the `plan` agent (its outcome bounded by
 * --plan-result-max-bytes, the device error text it quotes by --plan-error-max-bytes); with --llm-base-url and
 * --llm-model, the `llm` agent too, as the default for requests that are not plans.
 */
import { LlmAgent, LLM_AGENT_NAME } from '../agents/llm/llm-agent.js';
import { AgentRegistry } from '../agents/registry.js';
import type { ServerConfig } from '../config.js';

export function agentRegistryFor(config: ServerConfig): AgentRegistry {
  const registry = new AgentRegistry({
    plan: { resultMaxBytes: config.planResultMaxBytes, errorMaxBytes: config.planErrorMaxBytes },
  });
  if (config.llmBaseUrl === undefined || config.llmModel === undefined) return registry;
  registry.register(
    new LlmAgent({
      baseUrl: config.llmBaseUrl,
      model: config.llmModel,
      apiKey: config.llmApiKey,
      authHeader: config.llmAuthHeader,
      timeoutMs: config.llmTimeoutMs,
      retries: config.llmRetries,
      retryBaseMs: config.llmRetryBaseMs,
      retryMaxMs: config.llmRetryMaxMs,
      maxSteps: config.llmMaxSteps,
      tokenBudget: config.llmTokenBudget,
      temperature: config.llmTemperature,
      toolResultMaxBytes: config.llmToolResultMaxBytes,
      maxResponseBytes: config.llmMaxResponseBytes,
      maxToolCalls: config.llmMaxToolCalls,
      maxConversationBytes: config.llmMaxConversationBytes,
    }),
  );
  return registry.setDefault(LLM_AGENT_NAME);
}
