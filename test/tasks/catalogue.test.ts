import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { TaskRegistry } from '../../src/tasks/registry.js'
import { loadTasks } from '../../src/tasks/load.js'
import { RunContext } from '../../src/tasks/context.js'
import { postJob, startServer } from '../helpers.js'

let registry: TaskRegistry
beforeAll(async () => { registry = await TaskRegistry.load() })

const context = new RunContext({ upstreamUrl: undefined })
const run = async (name: string, input: unknown): Promise<unknown> => {
  const { task, input: checked } = registry.resolve({ task: name, input })
  return await task.run(checked, context)
}

describe('the catalogue', () => {
  it('has the contract\'s tasks, each in its kind', () => {
    const kinds = Object.fromEntries(registry.catalogue.map((t) => [t.name, t.kind]))
    expect(kinds).toEqual({
      compress: 'cpu',
      fib: 'cpu',
      hash: 'cpu',
      json: 'cpu',
      phased: 'cpu',
      primes: 'cpu',
      spin: 'cpu',
      cache: 'io',
      db: 'io',
      fanout: 'io',
      file: 'io',
      http: 'io',
      sleep: 'io'
    })
  })

  it('gives every task a description and a closed schema whose values are all bounded', () => {
    for (const t of registry.catalogue) {
      expect(t.description.length).toBeGreaterThan(20)
      expect(t.input.additionalProperties).toBe(false)
      for (const [prop, schema] of Object.entries(t.input.properties)) {
        // A number has a minimum and a maximum; a choice is an enum of a few values.
        if ('enum' in schema) {
          expect((schema as { enum: unknown[] }).enum.length, `${t.name}.${prop}`).toBeLessThan(10)
          continue
        }
        expect(schema, `${t.name}.${prop}`).toHaveProperty('maximum')
        expect(schema, `${t.name}.${prop}`).toHaveProperty('minimum')
      }
    }
  })

  it('refuses names that are not in it, path-like ones included', () => {
    for (const name of ['nope', '../cpu-tasks/fib', 'fib.js', '__proto__', 'constructor', 'toString', 'x'.repeat(64)]) {
      expect(() => registry.resolve({ task: name, input: {} })).toThrow(expect.objectContaining({ code: 'UNKNOWN_TASK' }))
    }
  })

  it('refuses as bad input a name that is not a string of 1 to 64 characters', () => {
    for (const name of ['', 'x'.repeat(65), 42, null, undefined, ['fib'], { name: 'fib' }]) {
      expect(() => registry.resolve({ task: name, input: {} })).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }))
    }
  })
})

// For each task: an input at its limits that is accepted, and inputs that must be refused.
const limits: Array<[string, object, object[]]> = [
  ['fib', { n: 35 }, [{ n: 36 }, { n: -1 }, { n: 1.5 }, { n: '30' }, {}, { n: 3, extra: 1 }]],
  ['spin', { ms: 10_000 }, [{ ms: 10_001 }, { ms: -1 }, { ms: '5' }, { ms: null }]],
  ['primes', { limit: 20_000_000 }, [{ limit: 20_000_001 }, { limit: 1 }, { limit: [100] }]],
  ['hash', { bytes: 65_536, rounds: 10_000 }, [{ bytes: 65_537, rounds: 1 }, { bytes: 1, rounds: 10_001 }, { bytes: 1 }]],
  ['json', { items: 50_000 }, [{ items: 50_001 }, { items: 0 }, { items: true }]],
  ['phased', { lowMs: 10_000, highMs: 10_000, from: 0, to: 2e12 }, [{ lowMs: 0.05, highMs: 10_001, from: 0, to: 1 }, { lowMs: 0.05, highMs: 2, from: 0 }, { lowMs: -1, highMs: 2, from: 0, to: 1 }]],
  ['compress', { bytes: 4_194_304, level: 9 }, [{ bytes: 4_194_305 }, { bytes: 10, level: 0 }, { bytes: 10, level: 10 }]],
  ['sleep', { ms: 60_000 }, [{ ms: 60_001 }, { ms: -5 }, { ms: '100' }]],
  ['http', { delayMs: 30_000, bytes: 1_048_576 }, [{ delayMs: 30_001 }, { delayMs: 1, bytes: 1_048_577 }, { delayMs: 1.5 }]],
  ['fanout', { calls: 100, delayMs: 30_000, failRate: 1 }, [{ calls: 101 }, { calls: 0 }, { calls: 2, failRate: 1.1 }, { calls: 2, failRate: -0.1 }]],
  ['file', { bytes: 8 * 1024 * 1024 }, [{ bytes: 8 * 1024 * 1024 + 1 }, { bytes: 0 }, { bytes: '1' }]]
]

describe.each(limits)('%s input', (name, atLimit, refused) => {
  it('is accepted at its limits', () => {
    expect(() => registry.resolve({ task: name, input: atLimit })).not.toThrow()
  })
  it.each(refused)('refuses %j with BAD_INPUT, coercing nothing', (input) => {
    expect(() => registry.resolve({ task: name, input })).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }))
  })
})

describe('task results', () => {
  it('fib', async () => { expect(await run('fib', { n: 20 })).toBe(6765) })
  it('primes', async () => { expect(await run('primes', { limit: 100 })).toEqual({ count: 25, largest: 97 }) })
  it('hash is deterministic', async () => {
    const a = await run('hash', { bytes: 64, rounds: 3 })
    expect(a).toEqual(await run('hash', { bytes: 64, rounds: 3 }))
    expect((a as { digest: string }).digest).toMatch(/^[0-9a-f]{64}$/)
  })
  it('json', async () => { expect(await run('json', { items: 10 })).toMatchObject({ records: 10 }) })
  it('compress fills its default level and compresses', async () => {
    const r = await run('compress', { bytes: 100_000 }) as { ratio: number }
    expect(r.ratio).toBeGreaterThan(2)
  })
  it('spin does work proportional to ms', async () => {
    const a = await run('spin', { ms: 5 }) as { iterations: number }
    const b = await run('spin', { ms: 10 }) as { iterations: number }
    expect(Math.abs(b.iterations - 2 * a.iterations)).toBeLessThanOrEqual(1)
  })
  it.each([
    ['a cluster worker\'s event loop', { MODE: 'processes', PROCESSES: '2' }, 'inline'],
    ['a pool thread', { MODE: 'hybrid', PROCESSES: '1', THREADS: '1' }, 'pool']
  ])('spin on %s does SPIN_ITERATIONS_PER_MS per ms when it is set', async (_, env, via) => {
    const server = await startServer({ ...env, SPIN_ITERATIONS_PER_MS: '12345' })
    try {
      const { status, body } = await postJob(server.url, 'spin', { ms: 4 })
      expect(status).toBe(200)
      expect(body.ranOn.via).toBe(via)
      expect(body.result).toEqual({ ms: 4, iterations: 49_380 })
    } finally {
      await server.stop()
    }
  })
  it('phased spins for highMs between from and to, for lowMs outside', async () => {
    const now = Date.now()
    expect(await run('phased', { lowMs: 0.05, highMs: 2, from: now - 60_000, to: now + 60_000 })).toMatchObject({ ms: 2 })
    expect(await run('phased', { lowMs: 0.05, highMs: 2, from: now + 60_000, to: now + 120_000 })).toMatchObject({ ms: 0.05 })
    expect(await run('phased', { lowMs: 0.05, highMs: 2, from: now - 120_000, to: now - 60_000 })).toMatchObject({ ms: 0.05 })
  })
  it('sleep stops when its job aborts', async () => {
    const job = new RunContext({ upstreamUrl: undefined })
    const { task, input } = registry.resolve({ task: 'sleep', input: { ms: 60_000 } })
    const pending = task.run(input, job)
    const reason = new Error('stop')
    job.abort(reason)
    // The abort's reason, as fetch and signal.throwIfAborted() give it.
    await expect(pending).rejects.toBe(reason)
  })
  it('file reads the bytes asked for', async () => { expect(await run('file', { bytes: 4096 })).toEqual({ bytes: 4096 }) })
  it('http without a delay service is NOT_CONFIGURED', async () => {
    await expect(run('http', { delayMs: 1 })).rejects.toMatchObject({ code: 'NOT_CONFIGURED' })
  })
})

describe('discovery', () => {
  it('adds a task for a file dropped in, and refuses a module that lies about its name', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tasks-'))
    const cpu = join(dir, 'cpu')
    const io = join(dir, 'io')
    await Promise.all([cpu, io].map((d) => import('node:fs/promises').then((fs) => fs.mkdir(d))))
    try {
      await writeFile(join(cpu, 'double.js'), 'export default { name: \'double\', kind: \'cpu\', description: \'x\', schema: { type: \'object\', properties: {}, additionalProperties: false }, run: () => 2 }')
      const tasks = await loadTasks({ dirs: { cpu, io } })
      expect([...tasks.keys()]).toEqual(['double'])
      await writeFile(join(cpu, 'liar.js'), 'export default { name: \'other\', kind: \'cpu\', description: \'x\', schema: { type: \'object\', properties: {}, additionalProperties: false }, run: () => 2 }')
      await expect(loadTasks({ dirs: { cpu, io } })).rejects.toThrow(/liar\.js must export default a cpu task named "liar"/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
