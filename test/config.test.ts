import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { ConfigError, parseConfig, usesPool } from '../src/config.js'
import { childEnv, serverFile } from './helpers.js'

describe('parseConfig', () => {
  it('defaults to hybrid with the sizing rule: processes x threads = cores', () => {
    const c = parseConfig({}, 4)
    expect(c).toMatchObject({ mode: 'hybrid', processes: 4, threads: 1, cpuJobs: 'pool', ioJobs: 'event-loop', port: 3000, host: '127.0.0.1', jobTimeoutMs: 30_000, maxQueue: 1000, logLevel: 'info' })
    expect(parseConfig({ PROCESSES: '2' }, 8).threads).toBe(4)
    expect(parseConfig({ PROCESSES: '3' }, 2).threads).toBe(1)
  })

  it.each([
    ['event-loop', { processes: 1, cpuJobs: 'inline', ioJobs: 'event-loop' }],
    ['threads', { processes: 1, threads: 50, minThreads: 2, cpuJobs: 'pool', ioJobs: 'pool' }],
    ['processes', { processes: 2, cpuJobs: 'inline', ioJobs: 'event-loop' }],
    ['hybrid', { processes: 2, threads: 1, cpuJobs: 'pool', ioJobs: 'event-loop' }],
    ['auto', { processes: 2, threads: 1, cpuJobs: 'auto', ioJobs: 'event-loop' }]
  ])('applies the %s preset', (mode, expected) => {
    expect(parseConfig({ MODE: mode }, 2)).toMatchObject({ mode, ...expected })
  })

  it('lets an explicit flag override its preset', () => {
    const c = parseConfig({ MODE: 'threads', THREADS: '8', CPU_JOBS: 'inline', PROCESSES: '2', MAX_QUEUE: '0' }, 2)
    expect(c).toMatchObject({ mode: 'threads', threads: 8, cpuJobs: 'inline', ioJobs: 'pool', processes: 2, maxQueue: 0 })
  })

  it('treats an empty value as unset, and normalises the upstream URL', () => {
    expect(parseConfig({ PORT: '', UPSTREAM_URL: 'http://127.0.0.1:9000/' }, 2)).toMatchObject({ port: 3000, upstreamUrl: 'http://127.0.0.1:9000' })
  })

  it('reads the WebSocket limits and the token', () => {
    expect(parseConfig({}, 2)).toMatchObject({
      authToken: undefined,
      wsMaxInFlight: 1000,
      wsMaxFrameBytes: 1_048_576,
      wsMaxBufferedBytes: 4_194_304,
      wsPingIntervalMs: 30_000
    })
    expect(parseConfig({ AUTH_TOKEN: 'abc', WS_MAX_IN_FLIGHT: '5' }, 2)).toMatchObject({ authToken: 'abc', wsMaxInFlight: 5 })
  })

  it('dispatches CPU jobs to worker hosts only with REDIS_URL and a pool placement, and then runs no pool of its own', () => {
    expect(parseConfig({}, 2).dispatch).toBe('local')
    const queued = parseConfig({ DISPATCH: 'bullmq', REDIS_URL: 'redis://127.0.0.1:6379' }, 2)
    expect(queued).toMatchObject({ dispatch: 'bullmq', cpuJobs: 'pool' })
    expect(usesPool(queued)).toBe(false)
    expect(usesPool(parseConfig({ DISPATCH: 'bullmq', REDIS_URL: 'redis://127.0.0.1:6379', IO_JOBS: 'pool' }, 2))).toBe(true)
    for (const cpuJobs of ['inline', 'auto']) {
      expect(() => parseConfig({ DISPATCH: 'bullmq', REDIS_URL: 'redis://127.0.0.1:6379', CPU_JOBS: cpuJobs }, 2)).toThrow(/expected with CPU_JOBS=pool/)
    }
  })

  it('leaves spin to measure itself unless SPIN_ITERATIONS_PER_MS pins it', () => {
    expect(parseConfig({}, 2).spinIterationsPerMs).toBeUndefined()
    expect(parseConfig({ SPIN_ITERATIONS_PER_MS: '150000' }, 2).spinIterationsPerMs).toBe(150_000)
  })

  it('is frozen', () => {
    expect(Object.isFrozen(parseConfig({}, 2))).toBe(true)
  })

  it.each([
    ['MODE', 'fast'], ['MODE', 'Auto'], ['MODE', 'Hybrid'],
    ['PROCESSES', '0'], ['PROCESSES', '-1'], ['PROCESSES', '1.5'], ['PROCESSES', 'two'],
    ['THREADS', '0'], ['THREADS', '1e3'], ['THREADS', ' 4'],
    ['CPU_JOBS', 'threads'], ['CPU_JOBS', 'adaptive'], ['IO_JOBS', 'inline'], ['IO_JOBS', 'auto'],
    ['PORT', 'abc'], ['PORT', '65536'], ['PORT', '-1'],
    ['HOST', 'local host'], ['HOST', 'a/b'],
    ['JOB_TIMEOUT_MS', '0'], ['JOB_TIMEOUT_MS', '10s'],
    ['MAX_QUEUE', '-5'], ['MAX_QUEUE', 'many'],
    ['UPSTREAM_URL', 'not a url'], ['UPSTREAM_URL', 'ftp://x'],
    ['LOG_LEVEL', 'verbose'],
    ['AUTH_TOKEN', ''], ['AUTH_TOKEN', 'has space'],
    ['WS_MAX_IN_FLIGHT', '0'], ['WS_MAX_FRAME_BYTES', '10'], ['WS_MAX_BUFFERED_BYTES', 'lots'], ['WS_PING_INTERVAL_MS', '5'],
    ['SHED_TARGET_MS', '-1'], ['SHED_TARGET_MS', '0.5'], ['SHED_INTERVAL_MS', '0'], ['SHED_LOOP_TARGET_MS', 'ten'], ['SHED_LOOP_INTERVAL_MS', '0'],
    ['THREAD_NICE', '20'], ['THREAD_NICE', '-1'], ['THREAD_NICE', 'low'],
    ['DISPATCH', 'redis'], ['DISPATCH', 'bullmq'],
    ['SPIN_ITERATIONS_PER_MS', '999'], ['SPIN_ITERATIONS_PER_MS', '1.5e5'], ['SPIN_ITERATIONS_PER_MS', 'fast']
  ])('refuses %s=%s, naming the variable, the value and what is allowed', (variable, value) => {
    let error: unknown
    try {
      parseConfig({ [variable]: value }, 2)
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as ConfigError).message).toContain(`${variable}=${JSON.stringify(value)}`)
    expect((error as ConfigError).message).toMatch(/expected /)
  })
})

describe('a bad value at start-up', () => {
  it.each([['MODE', 'bogus'], ['THREADS', '0'], ['PORT', 'abc']])('%s=%s exits 2 with one stderr line, before anything listens', (variable, value) => {
    const run = spawnSync(process.execPath, [serverFile], { env: childEnv({ PORT: '0', [variable]: value }), encoding: 'utf8', timeout: 10_000 })
    expect(run.status).toBe(2)
    expect(run.stdout).toBe('')
    const lines = run.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(new RegExp(`^Invalid configuration: ${variable}="${value}" is not allowed: expected `))
  })
})
