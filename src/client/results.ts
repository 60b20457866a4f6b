/**
 * Turns what a command handler returned into the `action_results` of a `command_results` frame:
 * exactly one valid Result per action, in action order, with `call_id` copied from the action when the
 * handler left it unset (ufo-aip.md §7.2).
 */
import { Result, type Command, type ResultInput } from '../../protocol/index.js';

export function failureResult(error: string, callId: string | null = null): ResultInput {
  return { status: 'failure', error, result: null, namespace: null, call_id: callId };
}

/** One failure per action, e.g. when the handler threw. */
export function failAll(actions: readonly Command[], error: string): ResultInput[] {
  return actions.map((a) => failureResult(error, a.call_id));
}

/**
 * Pads missing results with failures, drops surplus ones, replaces invalid ones with failures,
 * and fills `call_id` from the action when unset.
 */
export function normalizeResults(actions: readonly Command[], returned: unknown): ResultInput[] {
  const list: unknown[] = Array.isArray(returned) ? returned : [];
  return actions.map((action, i) => {
    if (i >= list.length)
      return failureResult('Command handler returned no result for this action', action.call_id);
    const parsed = Result.safeParse(list[i]);
    if (!parsed.success)
      return failureResult(
        `Command handler returned an invalid result: ${parsed.error.message}`,
        action.call_id,
      );
    const r = parsed.data;
    return { ...r, call_id: r.call_id ?? action.call_id };
  });
}
