import { deflateSync, inflateSync } from 'node:zlib'
import type { TaskDefinition } from '../src/tasks/types.js'

interface Input { bytes: number, level: number }

/** Text-like data that compresses about as well as a log file: words from a small vocabulary. */
function makeText (bytes: number): Buffer {
  const words = ['event', 'loop', 'thread', 'process', 'worker', 'queue', 'latency', 'socket', 'pool', 'job']
  const out = Buffer.alloc(bytes)
  let seed = 42
  let at = 0
  while (at < bytes) {
    seed = (seed * 1_103_515_245 + 12_345) >>> 0
    at += out.write(`${words[seed % words.length] ?? ''} ${seed % 997} `, at)
  }
  return out
}

export default {
  name: 'compress',
  kind: 'cpu',
  description: 'Deflates `bytes` of text-like data at zlib `level` and inflates it back; reports the ratio.',
  schema: {
    type: 'object',
    properties: {
      bytes: { type: 'integer', minimum: 1, maximum: 4_194_304 },
      level: { type: 'integer', minimum: 1, maximum: 9, default: 6 }
    },
    required: ['bytes'],
    additionalProperties: false
  },
  run: ({ bytes, level }) => {
    const input = makeText(bytes)
    const packed = deflateSync(input, { level })
    const restored = inflateSync(packed)
    if (!restored.equals(input)) throw new Error('round trip changed the data')
    return { bytes, compressedBytes: packed.length, ratio: Number((bytes / packed.length).toFixed(3)) }
  }
} satisfies TaskDefinition<Input, { bytes: number, compressedBytes: number, ratio: number }>
