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
  // The wait resolves with the result itself: no async frame, and no AbortSignal, held while it waits.
  run: ({ ms }, context) => context.wait(ms, { sleptMs: ms })
} satisfies TaskDefinition<Input, { sleptMs: number }>
