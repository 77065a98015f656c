import { describe, expect, it } from 'vitest'
import { codedError, errors, statusOf, toErrorBody } from '../src/errors.js'

// The README's error table ("The API"), copied: a change on either side breaks this test.
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
  it('has every code of the contract with its status, one for bugs, one that is never sent, and the user service\'s two', () => {
    const { INTERNAL_ERROR, CANCELLED, CONFLICT, BACKEND_UNAVAILABLE, ...rest } = statusOf
    expect(rest).toEqual(contract)
    expect(INTERNAL_ERROR).toBe(500)
    expect(CANCELLED).toBe(499)
    expect(CONFLICT).toBe(409)
    expect(BACKEND_UNAVAILABLE).toBe(503)
  })

  it.each(Object.keys(errors))('%s: its key is its code', (key) => {
    const E = errors[key as keyof typeof errors]
    expect(new E('x', 'y').code).toBe(key)
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
