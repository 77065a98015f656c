import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../src/config.js'
import { projectRoot } from '../src/paths.js'

const read = (file: string): string => readFileSync(join(projectRoot, file), 'utf8')

interface Row { variable: string, defaultValue: string, range: string }

/** The rows of the tables whose first column is `variable`, in docs/configuration.md. */
function documentedVariables (): Row[] {
  const rows: Row[] = []
  let inTable = false
  for (const line of read('docs/configuration.md').split('\n')) {
    if (line.startsWith('| variable |')) { inTable = true; continue }
    if (!line.startsWith('|')) { inTable = false; continue }
    const cells = line.split('|').slice(1, -1).map((c) => c.trim())
    const name = /^`([A-Z][A-Z0-9_]*)`$/.exec(cells[0] ?? '')?.[1]
    if (inTable && name !== undefined) rows.push({ variable: name, defaultValue: cells[1] ?? '', range: cells[2] ?? '' })
  }
  return rows
}

/** Every variable parseConfig reads, seen by giving it an environment that records each read. */
function variablesRead (): Set<string> {
  const seen = new Set<string>()
  parseConfig(new Proxy({}, { get: (_, name) => { if (typeof name === 'string') seen.add(name); return undefined } }), 2)
  return seen
}

// Variables bounded by another: set it to its widest, so that each bound is tried alone (and
// DISPATCH=bullmq, which needs a Redis, has one).
const WIDEST = { REQUEST_TIMEOUT_MS: '3600000', PG_POOL_MAX: '1000', REDIS_URL: 'redis://127.0.0.1:6379' }
const parses = (env: Record<string, string>): boolean => {
  try {
    parseConfig({ ...WIDEST, ...env }, 2)
    return true
  } catch {
    return false
  }
}

describe('docs/configuration.md', () => {
  const rows = documentedVariables()

  it('lists every variable the parser reads, and no other', () => {
    expect(rows.length).toBeGreaterThan(30)
    const documented = rows.map((r) => r.variable).sort()
    expect(new Set(documented).size).toBe(documented.length)
    expect(documented).toEqual([...variablesRead()].sort())
  })

  it('gives each integer its range as the parser enforces it', () => {
    const ranged = rows.filter((r) => /^\d+ to \d+$/.test(r.range))
    expect(ranged.length).toBeGreaterThan(20)
    for (const { variable, range } of ranged) {
      const [min, max] = range.split(' to ').map(Number) as [number, number]
      expect({ variable, min: parses({ [variable]: String(min) }) }).toEqual({ variable, min: true })
      expect({ variable, max: parses({ [variable]: String(max) }) }).toEqual({ variable, max: true })
      expect({ variable, over: parses({ [variable]: String(max + 1) }) }).toEqual({ variable, over: false })
      if (min === 0) continue
      expect({ variable, under: parses({ [variable]: String(min - 1) }) }).toEqual({ variable, under: false })
    }
  })

  it('gives each choice its values as the parser takes them', () => {
    const choices = rows.filter((r) => /^`[^`]+`(, `[^`]+`)+$/.test(r.range))
    expect(choices.map((r) => r.variable)).toContain('MODE')
    for (const { variable, range } of choices) {
      for (const [, value] of range.matchAll(/`([^`]+)`/g)) {
        expect({ variable, value, ok: parses({ [variable]: value as string }) }).toEqual({ variable, value, ok: true })
      }
      expect({ variable, ok: parses({ [variable]: 'no-such-value' }) }).toEqual({ variable, ok: false })
    }
  })

  it('gives each default as the parser has it: setting a variable to it changes nothing', () => {
    const plain = rows.filter((r) => /^`[^`]+`$/.test(r.defaultValue))
    expect(plain.length).toBeGreaterThan(20)
    const defaults = parseConfig({}, 2)
    for (const { variable, defaultValue } of plain) {
      const value = defaultValue.slice(1, -1)
      expect({ variable, config: parseConfig({ [variable]: value }, 2) }).toEqual({ variable, config: defaults })
    }
  })
})

describe('the documents in the repo', () => {
  const tracked = execFileSync('git', ['ls-files'], { cwd: projectRoot, encoding: 'utf8' }).split('\n').filter(Boolean)
  const markdown = tracked.filter((f) => f.endsWith('.md'))

  it('keep the README short: what it is, how to start, where to read on', () => {
    expect(read('README.md').split('\n').length).toBeLessThan(250)
    for (const doc of ['docs/api.md', 'docs/configuration.md', 'docs/operations.md', 'bench/README.md']) {
      expect(read('README.md')).toContain(doc)
    }
  })

  it('link only to files that exist in the repo', () => {
    for (const file of markdown) {
      for (const [, target] of read(file).matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
        if (/^[a-z]+:/.test(target as string)) continue
        expect({ file, target, exists: existsSync(join(projectRoot, dirname(file), target as string)) })
          .toEqual({ file, target, exists: true })
      }
    }
  })

  it('name only source files that exist', () => {
    for (const file of markdown.filter((f) => !f.startsWith('bench/results/'))) {
      for (const [, path] of read(file).matchAll(/`((?:src|bench|test|cpu-tasks|io-tasks|fault-tasks|docs)\/[\w./-]+\.(?:ts|md|json))`/g)) {
        const exists = existsSync(join(projectRoot, path as string))
        expect({ file, path, exists }).toEqual({ file, path, exists: true })
      }
    }
  })

  it('never point at a document outside the repo', () => {
    const outside = /CONTRACT\.md|STYLE\.md|shared\/seed|\.\.\/shared|the seed\b/i
    const offenders = tracked
      .filter((f) => /\.(ts|js|md|json|sh|yml)$/.test(f) && !f.startsWith('bench/results/') && f !== 'test/docs.test.ts')
      .filter((f) => outside.test(read(f)))
    expect(offenders).toEqual([])
  })
})
