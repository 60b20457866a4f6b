/** Pluggable agents: the registry, the plan format, and the built-in `plan` agent. */
export * from './plan.js';
export * from './plan-agent.js';
export * from './registry.js';
