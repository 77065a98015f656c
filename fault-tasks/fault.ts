import type { TaskDefinition } from '../src/tasks/types.js'

type Mode = 'throw' | 'exit' | 'oom' | 'loop'
interface Input { mode: Mode }

/**
 * Misbehaves on purpose, so that the fault tests and `npm run chaos` can show what the server does
 * when a task goes wrong. Registered only with FAULT_TASKS=on, never in the public catalogue by
 * default. On a pool thread each fault costs that thread only; inline (CPU_JOBS=inline) `exit` and
 * `oom` take the whole process down, as they would any Node server, and the cluster replaces it.
 */
export default {
  name: 'fault',
  kind: 'cpu',
  description: 'Fails on purpose (FAULT_TASKS=on only): `throw` an error, `exit` the thread, `oom` exhaust its heap, `loop` forever.',
  schema: {
    type: 'object',
    properties: { mode: { enum: ['throw', 'exit', 'oom', 'loop'] } },
    required: ['mode'],
    additionalProperties: false
  },
  run: ({ mode }) => {
    switch (mode) {
      case 'throw':
        throw new Error('fault task: thrown on purpose')
      case 'exit':
        // In a worker thread this ends the thread, not the process.
        process.exit(1)
        break
      case 'oom': {
        const hoard: number[][] = []
        for (;;) hoard.push(new Array<number>(1_000_000).fill(hoard.length))
      }
      case 'loop':
        for (;;) { /* until JOB_TIMEOUT_MS terminates the thread */ }
    }
    return { mode }
  }
} satisfies TaskDefinition<Input, { mode: Mode }>
