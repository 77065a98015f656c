import { createHash } from 'node:crypto'
import type { TaskDefinition } from '../src/tasks/types.js'

interface Input { bytes: number, rounds: number }

export default {
  name: 'hash',
  kind: 'cpu',
  description: 'SHA-256 chain: `rounds` times, hash a `bytes`-long block with the previous digest. ' +
    'Runs in OpenSSL\'s C code, so V8 is not the bottleneck.',
  schema: {
    type: 'object',
    properties: {
      bytes: { type: 'integer', minimum: 1, maximum: 65_536 },
      rounds: { type: 'integer', minimum: 1, maximum: 10_000 }
    },
    required: ['bytes', 'rounds'],
    additionalProperties: false
  },
  run: ({ bytes, rounds }) => {
    const block = Buffer.alloc(bytes, 'concurrency')
    let digest = Buffer.alloc(32)
    for (let i = 0; i < rounds; i++) digest = createHash('sha256').update(digest).update(block).digest()
    return { digest: digest.toString('hex') }
  }
} satisfies TaskDefinition<Input, { digest: string }>
