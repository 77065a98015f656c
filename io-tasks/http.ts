import { getFromUpstream, type UpstreamAnswer } from '../src/upstream/client.js'
import type { TaskDefinition } from '../src/tasks/types.js'

interface Input { delayMs: number, bytes: number }

export default {
  name: 'http',
  kind: 'io',
  description: 'GET from the delay service, which answers `bytes` bytes after `delayMs` ms (like httpbin\'s /delay).',
  schema: {
    type: 'object',
    properties: {
      delayMs: { type: 'integer', minimum: 0, maximum: 30_000 },
      bytes: { type: 'integer', minimum: 0, maximum: 1_048_576, default: 0 }
    },
    required: ['delayMs'],
    additionalProperties: false
  },
  run: ({ delayMs, bytes }, { signal, upstreamUrl }) =>
    getFromUpstream(upstreamUrl, `/delay/${delayMs}?bytes=${bytes}`, signal)
} satisfies TaskDefinition<Input, UpstreamAnswer>
