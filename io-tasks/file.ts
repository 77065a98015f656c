import { randomBytes } from 'node:crypto'
import { open, rename, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TaskDefinition } from '../src/tasks/types.js'

interface Input { bytes: number }

const MAX_BYTES = 8 * 1024 * 1024
const dataFile = join(tmpdir(), `concurrency-matrix-${MAX_BYTES}.bin`)

let ready: Promise<void> | undefined
/**
 * Creates the data file once; written aside and renamed, so that threads and processes racing here all
 * see it whole.
 */
function ensureDataFile (): Promise<void> {
  ready ??= stat(dataFile).then((s) => {
    if (s.size < MAX_BYTES) throw new Error('short data file')
  }).catch(async () => {
    const aside = `${dataFile}.${process.pid}.${Math.random().toString(36).slice(2)}`
    await writeFile(aside, randomBytes(MAX_BYTES))
    await rename(aside, dataFile)
  }).catch((err: unknown) => {
    ready = undefined // a later job tries again
    throw err
  })
  return ready
}

export default {
  name: 'file',
  kind: 'io',
  description: 'Reads `bytes` bytes from a data file through fs.promises (which waits on libuv\'s thread pool, not the event loop).',
  schema: {
    type: 'object',
    properties: { bytes: { type: 'integer', minimum: 1, maximum: MAX_BYTES } },
    required: ['bytes'],
    additionalProperties: false
  },
  run: async ({ bytes }) => {
    await ensureDataFile()
    const handle = await open(dataFile, 'r')
    try {
      const { bytesRead } = await handle.read(Buffer.allocUnsafe(bytes), 0, bytes, 0)
      return { bytes: bytesRead }
    } finally {
      await handle.close()
    }
  }
} satisfies TaskDefinition<Input, { bytes: number }>
