import type { TaskDefinition } from '../src/tasks/types.js'

interface Input { items: number }

/** A deterministic document shaped like an API response: records with strings, numbers and arrays. */
function makeDocument (items: number): unknown {
  const records = []
  for (let i = 0; i < items; i++) {
    records.push({
      id: i,
      name: `user-${i}`,
      email: `user-${i}@example.test`,
      score: (i * 7919) % 1000 / 10,
      active: i % 3 !== 0,
      tags: ['alpha', 'beta', 'gamma'].slice(0, 1 + i % 3),
      address: { street: `${i} Main Street`, city: 'Springfield', zip: String(10_000 + i % 90_000) }
    })
  }
  return { total: items, records }
}

export default {
  name: 'json',
  kind: 'cpu',
  description: 'Builds a document of `items` records, then JSON.stringify and JSON.parse it: allocation-heavy work with garbage collection.',
  schema: {
    type: 'object',
    properties: { items: { type: 'integer', minimum: 1, maximum: 50_000 } },
    required: ['items'],
    additionalProperties: false
  },
  run: ({ items }) => {
    const text = JSON.stringify(makeDocument(items))
    const back = JSON.parse(text) as { records: unknown[] }
    return { bytes: Buffer.byteLength(text), records: back.records.length }
  }
} satisfies TaskDefinition<Input, { bytes: number, records: number }>
