/**
 * How a node reaches a client whose socket is on another node: a `ClientLink` proxy that hands each frame to a
 * `RemoteSender`. The cross-node bus (one Redis Stream inbox per node incarnation) implements `RemoteSender`;
 * until it is wired, `unreachableSender` refuses every frame, so cross-node sends fail visibly (false) instead
 * of vanishing.
 */
import type { ServerMessageInput } from '../../../protocol/index.js';
import type { OutboundFrame } from '../../cluster/envelope.js';
import type { ClientLink } from '../client-directory.js';

/** One frame for a client on another node (what the bus carries in a `frame` message). */
export type RemoteFrame = OutboundFrame;

/** Hands `frame` to node `nodeId` for its client `clientId` (registration `fence`). False when it cannot be accepted. */
export type RemoteSender = (nodeId: string, clientId: string, fence: number, frame: RemoteFrame) => boolean;

/** The sender used while no bus is wired: nothing crosses nodes. */
export const unreachableSender: RemoteSender = () => false;

export class RemoteClientLink implements ClientLink {
  /** `<node>/<client_id>#<fence>`: which registration this proxy reaches, for logs. */
  readonly id: string;

  constructor(
    readonly nodeId: string,
    readonly clientId: string,
    readonly fence: number,
    private readonly present: () => boolean,
    private readonly sender: () => RemoteSender,
  ) {
    this.id = `${nodeId}/${clientId}#${fence}`;
  }

  /** True once the registration this proxy was made for is no longer in the directory. */
  get closed(): boolean {
    return !this.present();
  }

  send(msg: ServerMessageInput): boolean {
    return !this.closed && this.sender()(this.nodeId, this.clientId, this.fence, { kind: 'message', msg });
  }

  sendRaw(data: string | Uint8Array, isBinary: boolean): boolean {
    return (
      !this.closed && this.sender()(this.nodeId, this.clientId, this.fence, { kind: 'raw', data, isBinary })
    );
  }

  /** A channel router's frame: marked as one, so the client's node translates its channel id (cross-node.ts). */
  sendChannel(frame: Uint8Array): boolean {
    return (
      !this.closed && this.sender()(this.nodeId, this.clientId, this.fence, { kind: 'chan', data: frame })
    );
  }

  /** Bytes wait on the client's own node (and in the bus), not here. */
  bufferedBytes(): number {
    return 0;
  }

  close(code: number, reason: string): void {
    if (!this.closed) this.sender()(this.nodeId, this.clientId, this.fence, { kind: 'close', code, reason });
  }
}
