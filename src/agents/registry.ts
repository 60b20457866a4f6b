/**
 * Picks the agent for a task. A request that is an inline plan (JSON object text with `steps`) goes to the
 * `plan` agent; anything else goes to the configured default agent, or to none (the session then ends
 * `failed` with NOT_A_PLAN).
 */
import type { Agent } from './contract.js';
import { isPlanRequest } from './plan.js';
import { PLAN_AGENT_NAME, PlanAgent, type PlanAgentOptions } from './plan-agent.js';

export interface AgentRegistryOptions {
  /** Extra agents, by their `name`. A `plan` agent here replaces the built-in one. */
  agents?: readonly Agent[];
  /** Name of the agent (registered above) for requests that are not plans. */
  defaultAgent?: string;
  /** Options of the built-in `plan` agent. */
  plan?: PlanAgentOptions;
}

export class AgentRegistry {
  private readonly agents = new Map<string, Agent>();
  private defaultName: string | null = null;

  constructor(options: AgentRegistryOptions = {}) {
    this.agents.set(PLAN_AGENT_NAME, new PlanAgent(options.plan));
    for (const a of options.agents ?? []) this.register(a);
    if (options.defaultAgent !== undefined) this.setDefault(options.defaultAgent);
  }

  /** Adds (or replaces) an agent under its `name`. */
  register(agent: Agent): this {
    this.agents.set(agent.name, agent);
    return this;
  }

  get(name: string): Agent | undefined {
    return this.agents.get(name);
  }

  get names(): string[] {
    return [...this.agents.keys()];
  }

  /** Sets the agent for non-plan requests; `null` clears it. Throws for a name that is not registered. */
  setDefault(name: string | null): this {
    if (name !== null && !this.agents.has(name)) throw new Error(`Unknown agent '${name}'`);
    this.defaultName = name;
    return this;
  }

  get defaultAgent(): Agent | null {
    return this.defaultName === null ? null : (this.agents.get(this.defaultName) ?? null);
  }

  /** The agent for this request, or null when it is not a plan and no default agent is configured. */
  select(request: string): Agent | null {
    if (isPlanRequest(request)) return this.agents.get(PLAN_AGENT_NAME) ?? null;
    return this.defaultAgent;
  }
}
