import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { codedError, errors, statusOf, toErrorBody } from '../src/errors.js'
import { projectRoot } from '../src/paths.js'

/** The error table of docs/api.md ("Errors"), as code -> status. */
function documentedErrors (): Record<string, number> {
  const page = readFileSync(join(projectRoot, 'docs', 'api.md'), 'utf8')
  const section = page.slice(page.indexOf('## Errors'), page.indexOf('## Cancellation'))
  return Object.fromEntries([...section.matchAll(/^\| (\d{3}) \| `([A-Z_]+)` \|/gm)].map(([, status, code]) => [code, Number(status)]))
}

// The codes the external contract promises clients, with their statuses: the server may add codes
// (the user service's, one for bugs, one never sent) but never change or drop one of these.
const contract = {
  BAD_INPUT: 400,
  UNAUTHORIZED: 401,
  UNKNOWN_TASK: 404,
  NOT_FOUND: 404,
  TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  TASK_FAILED: 500,
  UPSTREAM_FAILED: 502,
  OVERLOADED: 503,
  NOT_CONFIGURED: 503,
  TIMEOUT: 504
}

describe('the error catalogue', () => {
  it('is the table of docs/api.md, code for code and status for status', () => {
    const documented = documentedErrors()
    expect(Object.keys(documented).length).toBeGreaterThan(10)
    expect(documented).toEqual(statusOf)
  })

  it('keeps every code of the contract with its status', () => {
    expect(statusOf).toMatchObject(contract)
    expect(statusOf).toMatchObject({ INTERNAL_ERROR: 500, CANCELLED: 499, CONFLICT: 409, BACKEND_UNAVAILABLE: 503 })
  })

  it.each(Object.keys(errors))('%s: its key is its code', (key) => {
    const E = errors[key as keyof typeof errors]
    expect(new E('x', 'y').code).toBe(key)
  })

  // The answers built at load rates (refusals, bad input, timeouts) skip the cost of a stack; the
  // errors that point at a fault keep theirs for the error log.
  it.each(Object.keys(errors))('%s: a stack only where the error points at a fault', (key) => {
    const faults = ['TASK_FAILED', 'UPSTREAM_FAILED', 'BACKEND_UNAVAILABLE', 'INTERNAL_ERROR']
    const err = new errors[key as keyof typeof errors]('x', 'y')
    expect(err).toBeInstanceOf(Error)
    expect(typeof err.stack === 'string' && err.stack.includes('errors.test')).toBe(faults.includes(key))
  })

  it('answers in Fastify\'s shape', () => {
    expect(toErrorBody(new errors.UNKNOWN_TASK('"x"'))).toEqual({
      statusCode: 404, code: 'UNKNOWN_TASK', error: 'Not Found', message: 'No task named "x"; GET /tasks lists them'
    })
  })

  it('maps Fastify\'s own errors onto the catalogue', () => {
    expect(toErrorBody({ code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413, message: 'too large' }).code).toBe('TOO_LARGE')
    expect(toErrorBody({ code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', statusCode: 415 }).code).toBe('UNSUPPORTED_MEDIA_TYPE')
    expect(toErrorBody({ code: 'FST_ERR_CTP_EMPTY_JSON_BODY', statusCode: 400 }).code).toBe('BAD_INPUT')
    expect(toErrorBody({ validation: [], statusCode: 400, message: 'body must be object' })).toMatchObject({ code: 'BAD_INPUT', message: 'body must be object' })
  })

  it('says nothing about the cause of an unexpected error', () => {
    const body = toErrorBody(new TypeError('secret internal detail at /srv/app.js:12'))
    expect(body).toEqual({ statusCode: 500, code: 'INTERNAL_ERROR', error: 'Internal Server Error', message: 'Internal server error' })
    expect(toErrorBody('a string').code).toBe('INTERNAL_ERROR')
  })

  it('keeps a code and message that crossed from a pool thread', () => {
    expect(toErrorBody(codedError('UPSTREAM_FAILED', 'status 500'))).toMatchObject({ statusCode: 502, code: 'UPSTREAM_FAILED', message: 'status 500' })
  })
})
