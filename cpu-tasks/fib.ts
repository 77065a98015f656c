import type { TaskDefinition } from '../src/tasks/types.js'

interface Input { n: number }

function fib (n: number): number {
  return n < 2 ? n : fib(n - 1) + fib(n - 2)
}

export default {
  name: 'fib',
  kind: 'cpu',
  description: 'Recursive Fibonacci: exponential work, no memory, no allocation. fib(30) is about 10 ms.',
  schema: {
    type: 'object',
    properties: { n: { type: 'integer', minimum: 0, maximum: 35 } },
    required: ['n'],
    additionalProperties: false
  },
  run: ({ n }) => fib(n)
} satisfies TaskDefinition<Input, number>
