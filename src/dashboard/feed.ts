import cluster, { type Worker } from 'node:cluster'
import type { Config } from '../config.js'
import { answer, askPrimary, askWorker } from '../ipc.js'
import { IDLE_MS, type ProcessSample, type ProcessSampler } from './sample.js'

/** A worker's start or end, as the primary saw it. */
export interface WorkerEvent {
  at: number
  what: 'started' | 'died' | 'exited'
  worker: number
  pid: number
  /** How it ended: its exit code or signal. */
  how?: string
}

/** The whole server at one moment: every process's last interval, and what happened to its workers. */
export interface View {
  seq: number
  /** Epoch ms. */
  at: number
  config: Pick<Config, 'mode' | 'processes' | 'threads' | 'cpuJobs' | 'ioJobs'> & { shedding: boolean, auth: boolean }
  processes: ProcessSample[]
  /** Workers that did not send their sample in time (busy past VIEW_EVERY_MS, or dying). */
  late: Array<{ worker: number, pid: number }>
  /** Since the previous view. */
  events: WorkerEvent[]
}

export interface Feed {
  /** The views after `seq` (all that are kept, from -1), collecting one a second while asked. */
  since: (seq: number) => Promise<View[]>
  close: () => void
}

export const VIEW_EVERY_MS = 1000
/** Five minutes of views. */
export const HISTORY = 300
const SAMPLE_TIMEOUT_MS = 800

type Gather = () => Promise<{ samples: ProcessSample[], late: View['late'] }>

export const viewConfig = (config: Config): View['config'] => ({
  mode: config.mode,
  processes: config.processes,
  threads: config.threads,
  cpuJobs: config.cpuJobs,
  ioJobs: config.ioJobs,
  shedding: config.shedTargetMs > 0 || config.shedLoopTargetMs > 0,
  auth: config.authToken !== undefined
})

/**
 * Views, one a second, kept for HISTORY seconds. It collects only while someone asks (within
 * IDLE_MS of the last `since`), so that a server nobody watches does no work for the dashboard.
 */
export class ViewCollector implements Feed {
  readonly #gather: Gather
  readonly #config: View['config']
  #views: View[] = []
  #events: WorkerEvent[] = []
  #seq = 0
  #timer: NodeJS.Timeout | undefined
  #collecting: Promise<void> | undefined
  #askedAt = 0

  constructor (gather: Gather, config: View['config']) {
    this.#gather = gather
    this.#config = config
  }

  async since (seq: number): Promise<View[]> {
    this.#askedAt = Date.now()
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => { void this.#collect() }, VIEW_EVERY_MS)
      this.#timer.unref()
      await this.#collect()
    }
    return this.#views.filter((v) => v.seq > seq)
  }

  /** A worker started or ended: shown with the next view (the last 100 are kept while none is collected). */
  event (e: WorkerEvent): void {
    this.#events.push(e)
    if (this.#events.length > 100) this.#events.shift()
  }

  close (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  async #collect (): Promise<void> {
    if (Date.now() - this.#askedAt > IDLE_MS) {
      this.close()
      return
    }
    // A gathering slower than a second (a loop held by a long job) is not started again on top of itself.
    this.#collecting ??= this.#gather().then(({ samples, late }) => {
      const events = this.#events
      this.#events = []
      this.#views.push({ seq: ++this.#seq, at: Date.now(), config: this.#config, processes: samples, late, events })
      if (this.#views.length > HISTORY) this.#views.shift()
    }).finally(() => { this.#collecting = undefined })
    await this.#collecting
  }
}

/** A one-process server's feed: its own samples. */
export function localFeed (sampler: ProcessSampler, config: Config): ViewCollector {
  return new ViewCollector(async () => ({ samples: [sampler.sample()], late: [] }), viewConfig(config))
}

/**
 * In the primary: gathers every worker's sample for each view, and answers workers' requests for
 * views (whichever worker a page's stream reached). `workers` are the live ones.
 */
export function serveClusterDashboard (workers: () => Iterable<Worker>, config: Config): ViewCollector {
  const ask = async (w: Worker): Promise<ProcessSample | undefined> => w.isConnected()
    ? await askWorker<ProcessSample>(w, 'dashboard-sample-request', 'dashboard-sample', SAMPLE_TIMEOUT_MS).catch(() => undefined)
    : undefined
  const collector = new ViewCollector(async () => {
    const live = [...workers()]
    const samples = await Promise.all(live.map(ask))
    return {
      samples: samples.filter((s): s is ProcessSample => s !== undefined),
      late: live.filter((_, i) => samples[i] === undefined).map((w) => ({ worker: w.id, pid: w.process.pid ?? 0 }))
    }
  }, viewConfig(config))
  cluster.on('message', (worker, m: { type?: string, id: number, since: number }) => {
    if (m?.type === 'dashboard-request') answer(worker, 'dashboard-response', m.id, collector.since(m.since))
  })
  return collector
}

/**
 * In a cluster worker: answers the primary's requests for this process's sample, and reads views
 * from the primary. A worker being retired has let go of its channel: it shows itself alone.
 */
export function workerFeed (sampler: ProcessSampler, config: Config): Feed {
  const onMessage = (m: { type?: string, id: number }): void => {
    if (m?.type === 'dashboard-sample-request') answer(process, 'dashboard-sample', m.id, Promise.resolve(sampler.sample()))
  }
  process.on('message', onMessage)
  let alone: ViewCollector | undefined
  return {
    since: async (seq) => {
      if (process.connected) return await askPrimary<View[]>('dashboard-request', { since: seq }, 'dashboard-response', 5_000)
      alone ??= localFeed(sampler, config)
      return await alone.since(seq)
    },
    close: () => {
      process.off('message', onMessage)
      alone?.close()
    }
  }
}
