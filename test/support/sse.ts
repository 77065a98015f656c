import type { View } from '../../src/dashboard/feed.js'

export interface ViewStream {
  status: number
  contentType: string | null
  /** The pid of the process that serves the stream. */
  servedBy: number
  views: View[]
  /** The first view (already received or to come) that `match` accepts; rejects after `timeoutMs`. */
  next: (match: (v: View) => boolean, timeoutMs?: number) => Promise<View>
  close: () => void
}

/**
 * Reads GET /dashboard/events as a browser's EventSource would: `text/event-stream`, events split
 * on a blank line, each `view` event's data parsed.
 */
export async function openViews (url: string, query = ''): Promise<ViewStream> {
  const abort = new AbortController()
  const res = await fetch(`${url}/dashboard/events${query}`, { headers: { accept: 'text/event-stream' }, signal: abort.signal })
  const views: View[] = []
  const waiters = new Set<() => void>()
  if (res.ok && res.body !== null) {
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
    void (async () => {
      let buffer = ''
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }))
        if (done === true) return
        buffer += value
        let end
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const event = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const lines = event.split('\n')
          if (!lines.includes('event: view')) continue
          const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n')
          views.push(JSON.parse(data) as View)
          for (const wake of waiters) wake()
        }
      }
    })()
  } else {
    await res.body?.cancel()
  }
  const next = async (match: (v: View) => boolean, timeoutMs = 10_000): Promise<View> => {
    return await new Promise((resolve, reject) => {
      const check = (): void => {
        const found = views.find(match)
        if (found === undefined) return
        clearTimeout(timer)
        waiters.delete(check)
        resolve(found)
      }
      const timer = setTimeout(() => {
        waiters.delete(check)
        reject(new Error(`no matching view in ${timeoutMs} ms (${views.length} views)`))
      }, timeoutMs)
      waiters.add(check)
      check()
    })
  }
  return {
    status: res.status,
    contentType: res.headers.get('content-type'),
    servedBy: Number(res.headers.get('x-served-by-pid')),
    views,
    next,
    close: () => abort.abort()
  }
}
