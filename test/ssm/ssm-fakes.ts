/**
 * Fakes for driving SsmSession / SsmSocket without a server: a Connection (optionally closing synchronously, as
 * uWS runs the close handler inside ws.end()), a RemoteSessions with the few calls the SSM code makes, a
 * LiveRemote, a channel endpoint, and builders for the plugin's frames.
 */
import { decodeClientMessage, encodeClientMessage, type ClientMessage } from '../../src/ssm/codec.js';
import { ssmOptions } from '../../src/ssm/index.js';
import type { SsmOptions } from '../../src/ssm/session-plan.js';
import { ServerConfig } from '../../src/config.js';
import type { Connection, SocketHandler } from '../../src/transport/connection.js';
import type { LiveRemote, RemoteSessions } from '../../src/remote/remote-sessions.js';
import type { ChannelEndpoint } from '../../src/channel/endpoint.js';
import type { AipError } from '../../protocol/index.js';

export function options(over: Partial<SsmOptions> = {}): SsmOptions {
  return { ...ssmOptions({ ...ServerConfig.parse({}), apiKey: 'x' }), ...over };
}

let connIds = 0;

/** A Connection whose close() calls the handler's closed() synchronously, as uWS does. */
export class FakeConn implements Connection {
  readonly id = `fake-${++connIds}`;
  readonly path = '/sessions/s/ssm';
  readonly protocol = null;
  readonly remoteAddress = '';
  closed = false;
  readonly sent: Uint8Array[] = [];
  handler: SocketHandler | null = null;
  send(d: string | Uint8Array): boolean {
    if (this.closed) return false;
    this.sent.push(typeof d === 'string' ? Buffer.from(d) : d);
    return true;
  }
  bufferedBytes(): number {
    return 0;
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handler?.closed(1000);
  }
  messages(): ClientMessage[] {
    const out: ClientMessage[] = [];
    for (const b of this.sent) {
      const d = decodeClientMessage(b);
      if (d.ok) out.push(d.message);
    }
    return out;
  }
  channelClosed(): string | null {
    const m = this.messages().find((x) => x.messageType === 'channel_closed');
    return m ? String((JSON.parse(Buffer.from(m.payload).toString()) as { Output: string }).Output) : null;
  }
  /** Output frames numbered `seq` sent on this socket. */
  outputs(seq: number): number {
    return this.messages().filter(
      (m) => m.messageType === 'output_stream_data' && m.sequenceNumber === BigInt(seq),
    ).length;
  }
}

export interface FakeRemote {
  readonly remote: RemoteSessions;
  readonly ended: { id: string; status: string; reason: string }[];
}

export function fakeRemote(over: Record<string, unknown> = {}): FakeRemote {
  const ended: FakeRemote['ended'] = [];
  const remote = {
    tokens: { redeem: () => true },
    hold: () => () => undefined,
    capabilities: () => ({ channels: ['stream', 'port'], pty: true }),
    openChannel: () => new Promise(() => undefined),
    touch: () => undefined,
    record: () => undefined,
    end: (id: string, status: string, reason: string) => {
      ended.push({ id, status, reason });
      return Promise.resolve(true);
    },
    ...over,
  };
  return { remote: remote as unknown as RemoteSessions, ended };
}

export function fakeLive(
  name: 'Port' | 'Standard_Stream',
  params: Record<string, string[]> = {},
  onSize: (size: unknown) => void = () => undefined,
): LiveRemote {
  return {
    id: 'sess-1',
    agentId: 'dev',
    params: name === 'Port' ? { portNumber: ['80'], ...params } : params,
    closers: new Set<() => void>(),
    type: {
      name,
      endsWithStream: name !== 'Port',
      stream: (_p: unknown, size: unknown) => {
        onSize(size);
        return name === 'Port' ? { kind: 'port', params: {} } : { kind: 'stream', pty: true, params: {} };
      },
    },
  } as unknown as LiveRemote;
}

/** A channel endpoint that takes writes (kept in `got`) and never has output; reset() marks it. */
export type FakeEndpoint = ChannelEndpoint & {
  readonly got: Uint8Array[];
  resetCalled: boolean;
  peerReset(err: AipError): void;
};

export function fakeEndpoint(): FakeEndpoint {
  const ep = {
    got: [] as Uint8Array[],
    resetCalled: false,
    finished: false,
    state: 'open',
    error: null as AipError | null,
    trailer: null,
    onReadable: () => undefined,
    stateListeners: [] as (() => void)[],
    onStateChange: (l: () => void) => void ep.stateListeners.push(l),
    /** The device's side resets the channel (the device went away, or its service reset the connection). */
    peerReset: (err: AipError) => {
      ep.finished = true;
      ep.state = 'reset';
      ep.error = err;
      for (const l of ep.stateListeners) l();
    },
    take: () => undefined,
    write: (b: Uint8Array) => {
      ep.got.push(b);
      return Promise.resolve();
    },
    end: () => Promise.resolve(),
    reset: () => {
      ep.resetCalled = true;
      ep.finished = true;
      ep.state = 'reset';
    },
  };
  return ep as unknown as FakeEndpoint;
}

/** The plugin's frames, numbered from 0 per instance. */
export class PluginFrames {
  private seq = 0;
  input(payloadType: number, payload: Uint8Array | string): Uint8Array {
    return encodeClientMessage({
      messageType: 'input_stream_data',
      sequenceNumber: BigInt(this.seq++),
      payloadType,
      payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
    });
  }
  flag(value: number): Uint8Array {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(value);
    return this.input(10, b);
  }
  ack(seq: number): Uint8Array {
    return encodeClientMessage({
      messageType: 'acknowledge',
      flags: 3n,
      payload: Buffer.from(
        JSON.stringify({
          AcknowledgedMessageType: 'output_stream_data',
          AcknowledgedMessageId: '00000000-0000-0000-0000-000000000000',
          AcknowledgedMessageSequenceNumber: seq,
          IsSequentialMessage: true,
        }),
      ),
    });
  }
}

export const HANDSHAKE_OK = JSON.stringify({
  ClientVersion: '1.2.0.0',
  ProcessedClientActions: [{ ActionType: 'SessionType', ActionStatus: 1, ActionResult: null, Error: '' }],
  Errors: null,
});

export async function waitFor(pred: () => boolean, what: string, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
