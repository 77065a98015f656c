import { setTimeout as sleep } from 'node:timers/promises'
import type { TaskDefinition } from '../src/tasks/types.js'

interface Input { ms: number }

export default {
  name: 'sleep',
  kind: 'io',
  description: 'Waits `ms` milliseconds on a timer: pure waiting, the cheapest I/O there is.',
  schema: {
    type: 'object',
    properties: { ms: { type: 'number', minimum: 0, maximum: 60_000 } },
    required: ['ms'],
    additionalProperties: false
  },
  run: async ({ ms }, { signal }) => {
    await sleep(ms, undefined, { signal })
    return { sleptMs: ms }
  }
} satisfies TaskDefinition<Input, { sleptMs: number }>
