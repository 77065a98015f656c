import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { projectRoot } from '../src/paths.js'

const src = join(projectRoot, 'src')

/** A module's place in the architecture: its folder under src/, or the file itself for one at src/'s top. */
function unitOf (file: string): string {
  const rel = relative(src, file)
  return rel.includes('/') ? rel.split('/')[0] as string : rel
}

/** Every import between units of src/, as unit -> units it imports (type-only imports included: they couple too). */
function unitGraph (): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>()
  for (const entry of readdirSync(src, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue
    const file = join(entry.parentPath, entry.name)
    const from = unitOf(file)
    const edges = graph.get(from) ?? new Set<string>()
    graph.set(from, edges)
    for (const [, spec] of readFileSync(file, 'utf8').matchAll(/(?:from|import\()\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = resolve(dirname(file), spec as string).replace(/\.js$/, '.ts')
      if (!target.startsWith(src)) continue
      const to = unitOf(target)
      if (to !== from) edges.add(to)
    }
  }
  return graph
}

/** The first cycle found, as the path that closes it, or undefined. */
function findCycle (graph: Map<string, Set<string>>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>()
  const visit = (node: string, path: string[]): string[] | undefined => {
    if (state.get(node) === 'open') return [...path.slice(path.indexOf(node)), node]
    if (state.get(node) === 'done') return undefined
    state.set(node, 'open')
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next, [...path, node])
      if (cycle !== undefined) return cycle
    }
    state.set(node, 'done')
    return undefined
  }
  for (const node of graph.keys()) {
    const cycle = visit(node, [])
    if (cycle !== undefined) return cycle
  }
  return undefined
}

describe('the architecture', () => {
  it('has no import cycle between the folders of src/ (nor the files at its top)', () => {
    const graph = unitGraph()
    expect(graph.get('placement')).toContain('tasks') // the graph is read: a known edge is there
    expect(findCycle(graph)).toBeUndefined()
  })

  it('finds a cycle when there is one', () => {
    const graph = new Map([['a', new Set(['b'])], ['b', new Set(['c'])], ['c', new Set(['a'])]])
    expect(findCycle(graph)).toEqual(['a', 'b', 'c', 'a'])
  })

  it('keeps the generic task runtime free of the user service', () => {
    const graph = unitGraph()
    for (const unit of ['tasks', 'placement', 'backends']) expect(graph.get(unit)).not.toContain('users')
  })
})
