import { performance } from 'node:perf_hooks'
import type { TaskDefinition } from '../src/tasks/types.js'

interface Input { ms: number }

let checksum = 0
function work (iterations: number): void {
  let x = checksum
  for (let i = 0; i < iterations; i++) x = (x * 1_103_515_245 + 12_345) | 0
  checksum = x
}

/**
 * Iterations of `work` per millisecond of CPU on this thread, measured: the best of several short
 * rounds, so that a round in which the thread was preempted does not count.
 */
export function measureIterationsPerMs (): number {
  let best = 0
  const n = 200_000
  for (let round = 0; round < 15; round++) {
    const start = performance.now()
    work(n)
    best = Math.max(best, n / (performance.now() - start))
  }
  return best
}

let perMs: number | undefined
/**
 * SPIN_ITERATIONS_PER_MS when it is set (src/config.ts checks it at start-up; cluster workers and
 * pool threads inherit the environment), else measured on this thread at its first job and kept.
 * Measured, it is only as steady as the machine at that moment: on a shared machine two threads'
 * measures differed by up to 16%, and two servers compared side by side would then do different
 * work for the same `ms`. The bench measures it once and gives every server it compares the same.
 */
function iterationsPerMs (): number {
  perMs ??= Number(process.env.SPIN_ITERATIONS_PER_MS ?? '') || measureIterationsPerMs()
  return perMs
}

/** Busy for `ms` of CPU on an idle core; the iterations it ran. `phased` spins by this too. */
export function spinFor (ms: number): number {
  const iterations = Math.round(ms * iterationsPerMs())
  work(iterations)
  return iterations
}

export default {
  name: 'spin',
  kind: 'cpu',
  description: 'A fixed amount of CPU work calibrated to take `ms` milliseconds on an idle core: the benchmark\'s dial. ' +
    'On a busy machine it takes longer, as real work would.',
  schema: {
    type: 'object',
    properties: { ms: { type: 'number', minimum: 0, maximum: 10_000 } },
    required: ['ms'],
    additionalProperties: false
  },
  run: ({ ms }) => ({ ms, iterations: spinFor(ms) })
} satisfies TaskDefinition<Input, { ms: number, iterations: number }>
