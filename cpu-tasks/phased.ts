import type { TaskDefinition } from '../src/tasks/types.js'
import { spinFor } from './spin.js'

interface Input { lowMs: number, highMs: number, from: number, to: number }

/**
 * A workload that shifts while its jobs stay the same: `spin` for `highMs` between two moments of
 * the wall clock and for `lowMs` before and after. Every job of a run carries the same input, so
 * nothing in it tells `CPU_JOBS=auto` that the cost changed: only the run times do. The bench's
 * shifting row uses it; the clock is the machine's, so threads and processes agree on the phase.
 */
export default {
  name: 'phased',
  kind: 'cpu',
  description: 'Like `spin`, for `highMs` between the epoch milliseconds `from` and `to`, and for `lowMs` outside them: ' +
    'a task whose cost jumps and comes back while its input stays the same.',
  schema: {
    type: 'object',
    properties: {
      lowMs: { type: 'number', minimum: 0, maximum: 10_000 },
      highMs: { type: 'number', minimum: 0, maximum: 10_000 },
      // Epoch milliseconds, up to the year 2255.
      from: { type: 'number', minimum: 0, maximum: 9e12 },
      to: { type: 'number', minimum: 0, maximum: 9e12 }
    },
    required: ['lowMs', 'highMs', 'from', 'to'],
    additionalProperties: false
  },
  run: ({ lowMs, highMs, from, to }) => {
    const now = Date.now()
    const ms = now >= from && now < to ? highMs : lowMs
    return { ms, iterations: spinFor(ms) }
  }
} satisfies TaskDefinition<Input, { ms: number, iterations: number }>
