import { isUtf8 } from 'node:buffer'
import { Packr, Unpackr } from 'msgpackr'
import { errors } from '../errors.js'

export const JSON_TYPE = 'application/json'
export const MSGPACK_TYPES = ['application/msgpack', 'application/x-msgpack', 'application/vnd.msgpack'] as const
export const MSGPACK_TYPE = MSGPACK_TYPES[0]

/** Deeper than any task input needs; bounds the work of checking a body and of every later walk over it. */
export const MAX_DEPTH = 32

// Plain MessagePack: maps become plain objects, no records, no structured clone references, and
// 64-bit integers become numbers, never BigInt.
const unpackr = new Unpackr({ mapsAsObjects: true, useRecords: false, structuredClone: false, int64AsType: 'number' })
const packr = new Packr({ useRecords: false, structuredClone: false })

/**
 * Throws BAD_INPUT unless `value` is plain data: null, booleans, finite numbers, strings, arrays
 * and objects whose prototype is Object.prototype, nested at most MAX_DEPTH deep, with no key that
 * could reach a prototype. What msgpackr's extensions make (Date, RegExp, Error, Set, typed
 * arrays, BigInt, undefined, binary) is refused here rather than trusted later.
 */
export function assertPlainData (value: unknown, depth = 0): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return
  if (typeof value === 'number') {
    if (Number.isFinite(value)) return
    throw new errors.BAD_INPUT('numbers must be finite')
  }
  if (typeof value !== 'object') throw new errors.BAD_INPUT(`values of type ${typeof value} are not accepted`)
  if (depth >= MAX_DEPTH) throw new errors.BAD_INPUT(`nesting deeper than ${MAX_DEPTH} levels`)
  if (Array.isArray(value)) {
    for (const item of value) assertPlainData(item, depth + 1)
    return
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) throw new errors.BAD_INPUT('only plain objects, arrays, strings, numbers, booleans and null are accepted')
  for (const key in value) {
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') throw new errors.BAD_INPUT(`key "${key}" is not accepted`)
    assertPlainData((value as Record<string, unknown>)[key], depth + 1)
  }
}

export function decodeJson (body: Buffer): unknown {
  if (body.length === 0) throw new errors.BAD_INPUT('payload is empty')
  if (!isUtf8(body)) throw new errors.BAD_INPUT('payload is not valid UTF-8')
  let value: unknown
  try {
    value = JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw new errors.BAD_INPUT(`payload is not valid JSON: ${(err as Error).message}`)
  }
  assertPlainData(value)
  return value
}

export function decodeMsgpack (body: Buffer): unknown {
  if (body.length === 0) throw new errors.BAD_INPUT('payload is empty')
  let value: unknown
  try {
    value = unpackr.unpack(body)
  } catch (err) {
    // Truncated data, trailing bytes, a bad extension, or nesting deep enough to overflow the stack.
    throw new errors.BAD_INPUT(`payload is not valid MessagePack: ${(err as Error).message.slice(0, 100)}`)
  }
  assertPlainData(value)
  return value
}

export function encodeMsgpack (value: unknown): Buffer {
  return packr.pack(value)
}

/** Whether the Accept header names a MessagePack type (with a q above 0). */
export function wantsMsgpack (accept: string | undefined): boolean {
  if (accept === undefined || !accept.includes('msgpack')) return false
  for (const part of accept.split(',')) {
    const [type = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase())
    if ((MSGPACK_TYPES as readonly string[]).includes(type) && !params.some((p) => /^q=0(\.0*)?$/.test(p))) return true
  }
  return false
}
