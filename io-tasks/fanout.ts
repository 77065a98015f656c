import { getFromUpstream } from '../src/upstream/client.js'
import { errors } from '../src/errors.js'
import type { TaskDefinition } from '../src/tasks/types.js'

interface Input { calls: number, delayMs: number, failRate: number }
interface Output { calls: number, succeeded: number, failed: Array<{ index: number, reason: string }> }

/** Whether call `index` is one the delay service is asked to fail: spread evenly, floor(calls x rate) of them. */
function injected (index: number, rate: number): boolean {
  return Math.floor((index + 1) * rate) > Math.floor(index * rate)
}

export default {
  name: 'fanout',
  kind: 'io',
  description: 'Calls the delay service `calls` times at once, asks it to fail the share `failRate` of them, and ' +
    'answers with which failed, like asyncio.gather(..., return_exceptions=True). More failures than that share fail the job.',
  schema: {
    type: 'object',
    properties: {
      calls: { type: 'integer', minimum: 1, maximum: 100 },
      delayMs: { type: 'integer', minimum: 0, maximum: 30_000, default: 10 },
      failRate: { type: 'number', minimum: 0, maximum: 1, default: 0 }
    },
    required: ['calls'],
    additionalProperties: false
  },
  run: async ({ calls, delayMs, failRate }, { signal, upstreamUrl }) => {
    const settled = await Promise.allSettled(Array.from({ length: calls }, (_, i) =>
      getFromUpstream(upstreamUrl, `/delay/${delayMs}${injected(i, failRate) ? '?status=500' : ''}`, signal)))
    if (signal.aborted) throw signal.reason
    const failed: Output['failed'] = []
    settled.forEach((s, index) => {
      if (s.status === 'rejected') failed.push({ index, reason: (s.reason as Error).message })
    })
    const tolerated = Math.floor(calls * failRate)
    if (failed.length > tolerated) {
      throw new errors.UPSTREAM_FAILED(`${failed.length} of ${calls} calls failed, ${tolerated} tolerated`)
    }
    return { calls, succeeded: calls - failed.length, failed }
  }
} satisfies TaskDefinition<Input, Output>
