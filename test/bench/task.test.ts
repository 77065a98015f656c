import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makePlan, MODELS } from '../../bench/matrix/plan.js'
import { recommend, resolveTask, runTask, taskCells, TaskSpecError, writeTaskReport, type TaskPoint } from '../../bench/matrix/task.js'
import { distDir } from '../../src/paths.js'

const run = promisify(execFile)
// A task of the test's own, as a user would drop one into cpu-tasks/ (here already compiled).
const NAME = `made-by-test-${process.pid}`
const TASK_FILE = join(distDir, 'cpu-tasks', `${NAME}.js`)
const SOURCE = `export default {
  name: '${NAME}',
  kind: 'cpu',
  description: 'The sum of the first n squares, the slow way.',
  schema: { type: 'object', properties: { n: { type: 'integer', minimum: 1, maximum: 10000000 } }, required: ['n'], additionalProperties: false },
  run: ({ n }) => { let s = 0; for (let i = 0; i < n; i++) s += i * i; return { s } }
}
`

describe('npm run bench -- --task', () => {
  beforeAll(async () => { await writeFile(TASK_FILE, SOURCE) })
  afterAll(async () => { await rm(TASK_FILE, { force: true }) })

  it('checks the task and its input by the task\'s own schema before anything starts', async () => {
    await expect(resolveTask({ name: NAME, input: { n: 1000 } })).resolves.toEqual({ kind: 'cpu', usesBackends: false })
    await expect(resolveTask({ name: NAME, input: { n: 'many' } })).rejects.toThrow(TaskSpecError)
    await expect(resolveTask({ name: 'no-such-task', input: {} })).rejects.toThrow(/no task "no-such-task"/)
    const main = join(distDir, 'bench', 'matrix', 'main.js')
    const wrong = [
      ['--task', 'no-such-task'], ['--task', NAME, '--input', '{"n":0}'], ['--task', NAME, '--input', '{'],
      ['--task', NAME, '--concurrency', '0'], ['--input', '{}']
    ]
    for (const args of wrong) {
      const failed = await run(process.execPath, [main, ...args])
        .then(() => undefined, (err: { code: number, stderr: string }) => err)
      expect(failed?.code, args.join(' ')).toBe(2)
      expect(failed?.stderr).toContain('npm run bench -- --task NAME')
    }
  })

  it('sends a CPU task over HTTP with a connection per job in flight, an I/O task over WebSocket', () => {
    expect(taskCells({ name: NAME, input: {} }, 'cpu', 2).map((c) => [c.inFlight, c.load.transport, c.load.connections, c.load.cut])).toEqual([[16, 'http', 16, false]])
    expect(taskCells({ name: 'sleep', input: {} }, 'io', 2).map((c) => [c.inFlight, c.load.transport, c.load.connections, c.load.inFlight])).toEqual([
      [10, 'ws', 10, 1], [100, 'ws', 10, 10], [1000, 'ws', 10, 100]
    ])
  })

  it('recommends the model recommended everywhere, else the one tied for the best most often', () => {
    const point = (inFlight: number, tied: TaskPoint['tied'], recommended: TaskPoint['recommended']): TaskPoint =>
      ({ inFlight, winner: tied[0] ?? recommended, decided: tied.length === 1, tied, recommended, reason: '' })
    expect(recommend([point(10, ['hybrid', 'processes'], 'hybrid'), point(100, ['hybrid'], 'hybrid')]).model).toBe('hybrid')
    const split = recommend([point(10, ['threads', 'hybrid'], 'threads'), point(100, ['hybrid', 'event-loop'], 'event-loop'), point(1000, ['event-loop'], 'event-loop')])
    expect(split.model).toBe('event-loop')
    expect(split.why).toContain('at 1,000 in flight `event-loop` won')
  })

  it('measures every model on it, end to end on real servers, and writes the report', async () => {
    const plan = makePlan('smoke', 2)
    const lines: string[] = []
    const result = await runTask({ name: NAME, input: { n: 20_000 }, concurrency: [4] }, plan, (l) => lines.push(l))
    expect(result.results.map((r) => r.model)).toEqual([...MODELS])
    for (const r of result.results) expect(r.runs[0]?.jobsPerS, r.model).toBeGreaterThan(0)
    expect(result.points).toHaveLength(1)
    expect(MODELS).toContain(result.recommended.model)
    expect(result.points[0]?.reason).toMatch(/jobs\/s/)
    expect(result.points[0]?.reason).toContain('cores busy')
    const dir = await mkdtemp(join(tmpdir(), 'task-report-'))
    try {
      const written = await writeTaskReport(result, dir)
      const md = await readFile(written.markdown, 'utf8')
      expect(md).toContain(`# \`${NAME}\` under every model`)
      expect(md).toContain(`**Recommended: \`${result.recommended.model}\`**`)
      expect(JSON.parse(await readFile(written.json, 'utf8'))).toMatchObject({ task: { name: NAME, kind: 'cpu', input: { n: 20_000 } } })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
