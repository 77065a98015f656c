import { Packr } from 'msgpackr'
import { describe, expect, it } from 'vitest'
import { assertPlainData, decodeJson, decodeMsgpack, encodeMsgpack, MAX_DEPTH, wantsMsgpack } from '../../src/http/codec.js'

// msgpackr's own extensions, as a client that enables them would send them.
const rich = new Packr({ moreTypes: true, useBigIntExtension: true })
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s/g, ''), 'hex')
const nested = (depth: number): unknown => {
  let v: unknown = 1
  for (let i = 0; i < depth; i++) v = [v]
  return v
}

describe('decodeMsgpack', () => {
  it('round-trips plain data', () => {
    const value = { task: 'fib', input: { n: 30, list: [1, 'a', null, true, 2.5], deep: { x: {} } } }
    expect(decodeMsgpack(encodeMsgpack(value))).toEqual(value)
  })

  it('turns 64-bit integers into numbers, never BigInt', () => {
    expect(decodeMsgpack(hex('cf ffffffffffffffff'))).toBeTypeOf('number')
  })

  // Each hostile input is a coded BAD_INPUT, never a crash and never a non-plain value.
  it.each([
    ['empty body', Buffer.alloc(0)],
    ['truncated array', hex('92 01')],
    ['truncated string', hex('a5 6162')],
    ['trailing bytes', hex('01 02')],
    ['reserved byte 0xc1', hex('c1')],
    ['array claiming 4 billion items', hex('dd ffffffff 01')],
    ['map claiming 4 billion entries', hex('df ffffffff')],
    ['timestamp extension (Date)', rich.pack(new Date(0))],
    ['RegExp extension', rich.pack(/a+$/)],
    ['Error extension', rich.pack(new Error('boom'))],
    ['Set extension', rich.pack(new Set([1]))],
    ['typed array extension', rich.pack(new Uint8Array([1, 2]))],
    ['binary', hex('c4 02 0102')],
    ['BigInt extension', rich.pack(10n ** 30n)],
    ['undefined', hex('d4 00 00')],
    ['unknown extension type', hex('d4 11 00')],
    ['structured-clone pointer without a target', hex('d6 70 00000001')],
    ['NaN', hex('cb 7ff8000000000000')],
    ['Infinity', hex('ca 7f800000')],
    ['nesting past the limit', encodeMsgpack(nested(MAX_DEPTH + 1))],
    ['nesting deep enough to overflow the stack', Buffer.concat([Buffer.alloc(200_000, 0x91), hex('01')])],
    ['constructor key', encodeMsgpack({ constructor: { prototype: { polluted: true } } })]
  ])('refuses %s with BAD_INPUT', (_name, body) => {
    expect(() => decodeMsgpack(body)).toThrow(expect.objectContaining({ code: 'BAD_INPUT', statusCode: 400 }))
  })

  it('never lets a __proto__ key reach a prototype', () => {
    // { "__proto__": { "polluted": 1 } } written by hand: an encoder would not write it.
    const body = Buffer.concat([hex('81 a9'), Buffer.from('__proto__'), hex('81 a8'), Buffer.from('polluted'), hex('01')])
    let value: unknown
    try {
      value = decodeMsgpack(body)
    } catch (err) {
      expect(err).toMatchObject({ code: 'BAD_INPUT' })
    }
    if (value !== undefined) expect(Object.getPrototypeOf(value)).toBe(Object.prototype)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('keeps working after a hostile input', () => {
    expect(() => decodeMsgpack(Buffer.concat([Buffer.alloc(100_000, 0x91), hex('01')]))).toThrow()
    expect(decodeMsgpack(encodeMsgpack({ ok: 1 }))).toEqual({ ok: 1 })
  })
})

describe('decodeJson', () => {
  it.each([
    ['empty body', ''],
    ['truncated', '{"task":'],
    ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])],
    ['__proto__ key', '{"task":"fib","input":{"__proto__":{"x":1}}}'],
    ['constructor.prototype', '{"constructor":{"prototype":{"x":1}}}'],
    ['nesting past the limit', JSON.stringify(nested(MAX_DEPTH + 1))],
    ['very deep nesting', '['.repeat(100_000) + ']'.repeat(100_000)]
  ])('refuses %s with BAD_INPUT', (_name, body) => {
    expect(() => decodeJson(Buffer.from(body))).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }))
  })

  it('accepts nesting up to the limit', () => {
    expect(decodeJson(Buffer.from(JSON.stringify(nested(MAX_DEPTH - 1))))).toEqual(nested(MAX_DEPTH - 1))
  })
})

describe('assertPlainData', () => {
  it.each([[new Date()], [new Map()], [Object.create(null)], [() => 1], [Symbol('s')], [undefined], [1n]])('refuses %s', (value) => {
    expect(() => assertPlainData(value)).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }))
  })
})

describe('wantsMsgpack', () => {
  it.each([
    ['application/msgpack', true],
    ['application/x-msgpack', true],
    ['text/html, application/vnd.msgpack;q=0.9', true],
    ['application/msgpack;q=0', false],
    ['application/json', false],
    ['*/*', false],
    [undefined, false]
  ])('%s -> %s', (accept, expected) => {
    expect(wantsMsgpack(accept)).toBe(expected)
  })
})
