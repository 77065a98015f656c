import type { JobConnection } from './connection.js'

export interface WsStats {
  connections: number
  inFlight: number
  unsentBytes: number
  /** The most unsent answer bytes any connection has held. */
  peakUnsentBytes: number
  /** Times a connection stopped reading because its client read too slowly. */
  pauses: number
}

/** Every open job WebSocket of this process: for the heartbeat, the drain at close, and the figures. */
export class WsConnections {
  readonly #open = new Set<JobConnection>()
  #peak = 0
  #pauses = 0
  #draining = false

  /** A connection opened while the process drains is drained at once: answered what it sends meanwhile, then closed. */
  add (connection: JobConnection): void {
    this.#open.add(connection)
    if (this.#draining) void connection.drain()
  }

  /** A connection leaves its figures behind when it closes. */
  delete (connection: JobConnection): void {
    this.#open.delete(connection)
    this.#peak = Math.max(this.#peak, connection.peakUnsentBytes)
    this.#pauses += connection.pauses
  }

  heartbeat (): void {
    for (const c of this.#open) c.heartbeat()
  }

  /** Drains every connection, those that open meanwhile too, until none is left. */
  async drain (): Promise<void> {
    this.#draining = true
    while (this.#open.size > 0) {
      await Promise.all([...this.#open].map(async (c) => await c.drain()))
      await new Promise((resolve) => setTimeout(resolve, 10)) // a closed one leaves the set on its 'close'
    }
  }

  /** At the drain's deadline: every connection still open is cut. */
  terminate (): void {
    for (const c of this.#open) c.terminate()
  }

  stats (): WsStats {
    const open = [...this.#open]
    return {
      connections: open.length,
      inFlight: open.reduce((n, c) => n + c.inFlight, 0),
      unsentBytes: open.reduce((n, c) => n + c.unsentBytes, 0),
      peakUnsentBytes: Math.max(this.#peak, ...open.map((c) => c.peakUnsentBytes)),
      pauses: this.#pauses + open.reduce((n, c) => n + c.pauses, 0)
    }
  }
}
