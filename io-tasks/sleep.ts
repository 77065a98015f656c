import type { TaskDefinition } from '../src/tasks/types.js'
import { wait } from '../src/tasks/wait.js'

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
  // The wait resolves with the result itself: no async frame held while it waits.
  run: ({ ms }, { signal }) => wait(ms, { sleptMs: ms }, signal)
} satisfies TaskDefinition<Input, { sleptMs: number }>
