/**
 * A device shaped like UFO's: its tools depend on the command's `agent_name` (its mcp.yaml), `list_tools` answers
 * with MCPToolInfo lists per tool type, and every command it receives is recorded. Unlike UFO's client, a tool it
 * does not know is answered with a failure instead of silence, so a test that sends one fails instead of hanging.
 */
import type { ResultInput, ServerMessage } from '../../protocol/index.js';
import { AipDeviceClient, type DeviceClientOptions } from '../../src/client/index.js';

export interface DeviceTool {
  readonly name: string;
  readonly type?: 'action' | 'data_collection';
  readonly description?: string;
  readonly input_schema?: Record<string, unknown>;
  /** The tool's result for these parameters. */
  readonly run?: (params: Record<string, unknown>) => unknown;
}

export interface ReceivedCommand {
  readonly agent_name: string | null;
  readonly process_name: string | null;
  readonly tools: string[];
  readonly parameters: (Record<string, unknown> | null)[];
}

/** MCPToolInfo, as UFO's `list_tools` reports it (ufo-aip.md §3.5). */
export function toolInfo(t: DeviceTool): Record<string, unknown> {
  const type = t.type ?? 'action';
  return {
    tool_key: `${type}::${t.name}`,
    tool_name: t.name,
    namespace: 'TestExecutor',
    tool_type: type,
    description: t.description ?? `the ${t.name} tool`,
    input_schema: t.input_schema ?? { type: 'object', properties: {} },
  };
}

export function toolDevice(
  opts: Omit<DeviceClientOptions, 'onCommand'> & {
    /** Tools by `agent_name`; the key `*` serves any agent name. */
    tools: Record<string, DeviceTool[]>;
    /** Called before each command is answered (e.g. to hold it). */
    before?: (cmd: ServerMessage) => Promise<void> | void;
  },
): { device: AipDeviceClient; received: ReceivedCommand[] } {
  const received: ReceivedCommand[] = [];
  const device = new AipDeviceClient({
    ...opts,
    onCommand: async (cmd) => {
      const actions = cmd.actions ?? [];
      received.push({
        agent_name: cmd.agent_name,
        process_name: cmd.process_name,
        tools: actions.map((a) => a.tool_name),
        parameters: actions.map((a) => a.parameters),
      });
      await opts.before?.(cmd);
      const tools = opts.tools[cmd.agent_name ?? ''] ?? opts.tools['*'] ?? [];
      return actions.map((a): ResultInput => {
        if (a.tool_name === 'list_tools') {
          const type = (a.parameters as { tool_type?: string } | null)?.tool_type ?? a.tool_type;
          return {
            status: 'success',
            result: tools.filter((t) => (t.type ?? 'action') === type).map(toolInfo),
            call_id: a.call_id,
          };
        }
        const tool = tools.find((t) => t.name === a.tool_name);
        if (!tool) return { status: 'failure', error: `unknown tool ${a.tool_name}`, call_id: a.call_id };
        return { status: 'success', result: tool.run?.(a.parameters ?? {}) ?? 'ok', call_id: a.call_id };
      });
    },
  });
  device.on('error', () => undefined);
  return { device, received };
}
