/**
 * `UndeliveredTaskEnds` keeps the `task_end`s a requester missed until it registers again. A frame its link does
 * not take (the link closed during the delivery) stays kept for the next registration, and only a frame that went
 * out is recorded as told.
 */
import { describe, expect, it } from 'vitest';
import type { ServerMessageInput } from '../../protocol/index.js';
import { endFrame, UndeliveredTaskEnds } from '../../src/server/task-end.js';
import type { TaskRecords } from '../../src/server/task-records.js';
import type { ClientDirectory, ClientLink } from '../../src/state/client-directory.js';

/** A link that takes `accepts` frames, then behaves as closed. */
function link(accepts: number): ClientLink & { sent: string[] } {
  const sent: string[] = [];
  return {
    id: `c${accepts}`,
    closed: false,
    sent,
    send(msg: ServerMessageInput) {
      if (sent.length >= accepts) return false;
      sent.push(msg.session_id!);
      return true;
    },
    sendRaw: () => false,
    bufferedBytes: () => 0,
    close: () => undefined,
  };
}

function subject() {
  let current: ClientLink | undefined;
  const told: string[] = [];
  const directory = { link: () => current } as unknown as ClientDirectory;
  const records = {
    notified: (id: string) => {
      told.push(id);
      return Promise.resolve();
    },
  } as unknown as TaskRecords;
  const ends = new UndeliveredTaskEnds(directory, records);
  const connect = <L extends ClientLink | undefined>(l: L): L => {
    current = l;
    return l;
  };
  return { ends, told, connect };
}

const frame = (id: string) => endFrame(id, `task-${id}`, 'completed', { ok: true }, null);

describe('UndeliveredTaskEnds', () => {
  it('keeps what a closing link did not take, in order, for the next registration', () => {
    const { ends, told, connect } = subject();
    for (const id of ['s1', 's2', 's3']) ends.queue('req', frame(id));

    const first = connect(link(1));
    ends.deliver('req');
    expect(first.sent).toEqual(['s1']);
    expect(told).toEqual(['s1']);

    const second = connect(link(10));
    ends.deliver('req');
    expect(second.sent).toEqual(['s2', 's3']);
    expect(told).toEqual(['s1', 's2', 's3']);

    // Nothing is left to send a third time.
    const third = connect(link(10));
    ends.deliver('req');
    expect(third.sent).toEqual([]);
  });

  it('keeps every frame while the requester is not connected', () => {
    const { ends, told, connect } = subject();
    ends.queue('req', frame('s1'));
    connect(undefined);
    ends.deliver('req');
    const l = connect(link(10));
    ends.deliver('req');
    expect(l.sent).toEqual(['s1']);
    expect(told).toEqual(['s1']);
  });

  it('keeps a frame queued during the delivery too, after the ones the link did not take', () => {
    const { ends, told, connect } = subject();
    ends.queue('req', frame('s1'));
    ends.queue('req', frame('s2'));
    // A link that, while sending, sees a task end for the same requester queued, then closes.
    const closing = connect(link(0));
    const send = closing.send.bind(closing);
    let queuedMeanwhile = false;
    closing.send = (msg) => {
      if (!queuedMeanwhile) {
        queuedMeanwhile = true;
        ends.queue('req', frame('s3'));
      }
      return send(msg);
    };
    ends.deliver('req');
    expect(told).toEqual([]);
    const next = connect(link(10));
    ends.deliver('req');
    expect(next.sent).toEqual(['s1', 's2', 's3']);
    expect(told).toEqual(['s1', 's2', 's3']);
  });
});
