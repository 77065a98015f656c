import type { BackendHandles } from '../backends/handles.js'
import { errors } from '../errors.js'
import { getFromUpstream } from '../upstream/client.js'

export interface GatherFailure {
  source: 'postgres' | 'redis' | 'delay-service'
  code: string
  message: string
}

export interface ProductsAnswer {
  products: Array<{ id: number, name: string, priceCents: number, stock: number }> | null
  views: number | null
  recommendations: { from: string, delayMs: number } | null
  failed: GatherFailure[]
}

/** The delay service stands in for a recommendation service: 20 ms away, 1 s at most. */
const RECOMMENDATIONS_DELAY_MS = 20
const RECOMMENDATIONS_TIMEOUT_MS = 1000

async function recommendations (upstreamUrl: string | undefined): Promise<ProductsAnswer['recommendations']> {
  try {
    await getFromUpstream(upstreamUrl, `/delay/${RECOMMENDATIONS_DELAY_MS}`, AbortSignal.timeout(RECOMMENDATIONS_TIMEOUT_MS))
  } catch (err) {
    throw (err as Error).name === 'TimeoutError' ? new errors.TIMEOUT(RECOMMENDATIONS_TIMEOUT_MS) : err
  }
  return { from: 'delay-service', delayMs: RECOMMENDATIONS_DELAY_MS }
}

/**
 * A gather over three sources at once: the products from PostgreSQL, a view counter from Redis
 * and recommendations from the delay service. What fails is listed under `failed` and its part is
 * null, as Python's gather(..., return_exceptions=True) would have it; only when all three fail is
 * the answer an error (503).
 */
export async function gatherProducts (
  { postgres, redis }: BackendHandles, upstreamUrl: string | undefined
): Promise<ProductsAnswer> {
  if (postgres === undefined && redis === undefined) {
    throw new errors.NOT_CONFIGURED('the products gather', 'DATABASE_URL or REDIS_URL')
  }
  const [products, views, recommended] = await Promise.allSettled([
    (async () => {
      if (postgres === undefined) throw new errors.NOT_CONFIGURED('listing products', 'DATABASE_URL')
      const rows = await postgres.query<{ id: number, name: string, price_cents: number, stock: number }>(
        'SELECT id, name, price_cents, stock FROM products ORDER BY id LIMIT 50')
      return rows.map((r) => ({ id: r.id, name: r.name, priceCents: r.price_cents, stock: r.stock }))
    })(),
    (async () => {
      if (redis === undefined) throw new errors.NOT_CONFIGURED('the view counter', 'REDIS_URL')
      return await redis.incr('products:views')
    })(),
    recommendations(upstreamUrl)
  ])
  const failed: GatherFailure[] = []
  const value = <T>(source: GatherFailure['source'], r: PromiseSettledResult<T>): T | null => {
    if (r.status === 'fulfilled') return r.value
    const e = r.reason as { code?: unknown, message?: unknown }
    const known = typeof e.code === 'string' && /^[A-Z_]+$/.test(e.code)
    failed.push({
      source,
      code: known ? e.code as string : 'INTERNAL_ERROR',
      message: known && typeof e.message === 'string' ? e.message : 'failed'
    })
    return null
  }
  const answer = {
    products: value('postgres', products),
    views: value('redis', views),
    recommendations: value('delay-service', recommended),
    failed
  }
  if (failed.length === 3) throw new errors.BACKEND_UNAVAILABLE('Every source of the products gather')
  return answer
}
