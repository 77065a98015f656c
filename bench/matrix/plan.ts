import type { Mode } from '../../src/config.js'
import type { LoadOptions } from '../load/options.js'

export const MODELS: readonly Mode[] = ['event-loop', 'threads', 'processes', 'hybrid', 'auto']

/** What a cell sends: a load of the load client, less what the bench fills in (URL, duration). */
export type Load = Pick<LoadOptions, 'transport' | 'connections' | 'inFlight' | 'mix'> & Partial<Pick<LoadOptions, 'rate' | 'encoding' | 'cut'>>

export type Row = 'cpu' | 'io-low' | 'io-sweep' | 'mixed' | 'users' | 'task'

export interface CellSpec {
  /** e.g. "cpu", "io-sweep ws 1000", "mixed io+cpu" */
  id: string
  row: Row
  /** Jobs in flight, for the sweep's points. */
  inFlight?: number
  load: Load
  /** Run alongside `load` for the whole window: the mixed row's CPU saturation. */
  background?: Load
  /** A warm-up at least this long before the settling rounds (start-up that outlasts them). */
  minWarmupS?: number
}

export interface Plan {
  name: 'quick' | 'full' | 'smoke'
  repeats: number
  /**
   * Trivial jobs each fresh server answers first, over its row's transport, before any cell's
   * warm-up (V8's warm-up: JIT_WARMUP in bench/overhead/measure.ts says why); 0 or absent (runs
   * before 2026-12-07 04:00): none.
   */
  jitWarmupS?: number
  /** Warm-up of a fresh server before its first cell, and of each cell after. */
  firstWarmupS: number
  warmupS: number
  /** Warm-up rounds at most, when throughput will not settle (a pool that sheds keeps changing). */
  maxWarmupRounds: number
  /** Each window's ramp-up, not counted: at least the longest job, so that the count is steady. */
  rampS: number
  windowS: number
  models: readonly Mode[]
  cells: CellSpec[]
  references: boolean
}

/** The mixed row's cell with CPU jobs beside the I/O: the one the naive server is measured on too. */
export const MIXED_CELL = 'mixed io+cpu'

const fib30 = [{ task: 'fib', input: { n: 30 }, weight: 1 }]
// CPU loads wait for their last answers instead of abandoning them: a running CPU job is
// cancelled by terminating its pool thread, and a window that did so would leave the next one
// starting threads again.
const cpuLoad = (connections: number): Load => ({ transport: 'http', connections, inFlight: 1, mix: fib30, cut: false })

export function cells (cores: number, sweep: readonly number[], transports: ReadonlyArray<'http' | 'ws'>, users = true): CellSpec[] {
  // node:cluster balances connections, not requests: with a client per core, one worker could hold
  // most of the connections and the other idle. Eight per core keep every worker's cores busy.
  const cpuClients = 8 * cores
  const list: CellSpec[] = [
    // Every model given more CPU work than it has cores: which one turns cores into jobs/s best.
    { id: 'cpu', row: 'cpu', load: cpuLoad(cpuClients) },
    // The article's low-concurrency I/O: 50 clients, each waiting on a 50 ms delay-service call.
    { id: 'io-low', row: 'io-low', inFlight: 50, load: { transport: 'http', connections: 50, inFlight: 1, mix: [{ task: 'http', input: { delayMs: 50, bytes: 0 }, weight: 1 }] } }
  ]
  for (const transport of transports) {
    for (const n of sweep) {
      // Pure waiting (250 ms timers), so that what falls over is the model, not the delay service.
      // HTTP gets a connection per job in flight: Node answers pipelined requests one at a time.
      const connections = transport === 'ws' ? Math.min(10, n) : n
      list.push({
        id: `io-sweep ${transport} ${n}`,
        row: 'io-sweep',
        inFlight: n,
        load: { transport, connections, inFlight: Math.ceil(n / connections), mix: [{ task: 'sleep', input: { ms: 250 }, weight: 1 }] }
      })
    }
  }
  // I/O at a steady 100 jobs/s, alone and then with CPU jobs saturating every core.
  const io: Load = { transport: 'http', connections: 50, inFlight: 1, rate: 100, mix: [{ task: 'http', input: { delayMs: 20, bytes: 0 }, weight: 1 }] }
  list.push({ id: 'mixed io alone', row: 'mixed', load: io })
  list.push({ id: MIXED_CELL, row: 'mixed', load: io, background: cpuLoad(cpuClients) })
  if (users) list.push(...userCells())
  return list
}

/**
 * The article's user service as a workload: 90% user reads through the Redis cache (cache-aside, a
 * random one of the 1,000 seeded users), 10% user inserts in a PostgreSQL transaction; at low
 * concurrency over HTTP and over a thousand in flight over WebSocket. Run only where PostgreSQL
 * and Redis can be started (the bench starts throwaway ones).
 */
export const USER_MIX = [{ task: 'cache', input: {}, weight: 9 }, { task: 'db', input: { op: 'write' }, weight: 1 }]
export const USERS_HIGH = 2000

function userCells (): CellSpec[] {
  // In `threads` each of the 48 threads started on demand loads pg and ioredis and opens its own
  // connections on its first job: about 7 s on 2 cores, longer than the settling rounds allow.
  const minWarmupS = 10
  return [
    { id: 'users low', row: 'users', inFlight: 50, minWarmupS, load: { transport: 'http', connections: 50, inFlight: 1, mix: USER_MIX } },
    { id: 'users high', row: 'users', inFlight: USERS_HIGH, minWarmupS, load: { transport: 'ws', connections: 10, inFlight: USERS_HIGH / 10, mix: USER_MIX } }
  ]
}

export function makePlan (name: Plan['name'], cores: number): Plan {
  if (name === 'full') {
    return { name, repeats: 3, jitWarmupS: 3, firstWarmupS: 1, warmupS: 0.75, maxWarmupRounds: 4, rampS: 0.5, windowS: 2, models: MODELS, cells: cells(cores, [10, 100, 500, 1000, 2000, 5000], ['ws', 'http']), references: true }
  }
  // The quick run leaves out the user-service row: PostgreSQL, Redis and 50 threads each opening
  // its own connections cost it half a minute, and it is to stay under two minutes.
  if (name === 'quick') {
    return { name, repeats: 1, jitWarmupS: 0, firstWarmupS: 0.4, warmupS: 0.3, maxWarmupRounds: 2, rampS: 0.3, windowS: 0.6, models: MODELS, cells: cells(cores, [1000, 5000], ['ws'], false), references: true }
  }
  // The test suite's: one short cell per model, proving the pipeline end to end; long enough that
  // a pool still starting its threads on a busy machine answers within the window.
  return { name, repeats: 1, jitWarmupS: 0, firstWarmupS: 0.6, warmupS: 0.3, maxWarmupRounds: 2, rampS: 0.3, windowS: 1, models: MODELS, cells: cells(cores, [], [], false).filter((c) => c.id === 'io-low').map((c) => ({ ...c, load: { ...c.load, connections: 4 } })), references: false }
}
