import { request } from 'undici'
import { errors } from '../errors.js'

export interface UpstreamAnswer {
  status: number
  bytes: number
}

/**
 * One GET to the delay service. Any failure of the upstream (refused, reset, non-2xx) is an
 * UPSTREAM_FAILED; an abort is passed through, so that the job's timeout is reported as such.
 */
export async function getFromUpstream (
  base: string | undefined, path: string, signal: AbortSignal
): Promise<UpstreamAnswer> {
  if (base === undefined) throw new errors.NOT_CONFIGURED('calling the delay service', 'UPSTREAM_URL')
  let status: number
  let bytes = 0
  try {
    const res = await request(`${base}${path}`, { signal })
    status = res.statusCode
    for await (const chunk of res.body) bytes += (chunk as Buffer).length
  } catch (err) {
    if (signal.aborted) throw err
    const code = (err as { code?: unknown }).code
    throw new errors.UPSTREAM_FAILED(typeof code === 'string' ? code : 'request failed')
  }
  if (status < 200 || status > 299) throw new errors.UPSTREAM_FAILED(`status ${status}`)
  return { status, bytes }
}
