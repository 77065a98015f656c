/** Messages between the server's processes over their IPC channels: the only ones there are. */

/** The delay service, forked by the server, tells it where it listens. */
export interface UpstreamMessage {
  type: 'upstream-listening'
  url: string
}
