import type { TaskDefinition } from '../src/tasks/types.js'

interface Input { limit: number }

export default {
  name: 'primes',
  kind: 'cpu',
  description: 'Sieve of Eratosthenes up to `limit`: memory-bound CPU work (one byte per number).',
  schema: {
    type: 'object',
    properties: { limit: { type: 'integer', minimum: 2, maximum: 20_000_000 } },
    required: ['limit'],
    additionalProperties: false
  },
  run: ({ limit }) => {
    const composite = new Uint8Array(limit + 1)
    let count = 0
    let largest = 0
    for (let i = 2; i <= limit; i++) {
      if (composite[i] === 1) continue
      count++
      largest = i
      for (let j = i * i; j <= limit; j += i) composite[j] = 1
    }
    return { count, largest }
  }
} satisfies TaskDefinition<Input, { count: number, largest: number }>
