import { readdir, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import type { FastifyPluginAsync } from 'fastify'
import { fastifySSE } from '@fastify/sse'
import { marked } from 'marked'
import { VIEW_EVERY_MS, type Feed } from '../dashboard/feed.js'
import { projectRoot } from '../paths.js'

const pageDir = join(projectRoot, 'dashboard')
const resultsDir = join(projectRoot, 'bench', 'results')
const uplotDir = join(createRequire(import.meta.url).resolve('uplot'), '..')

/** The page's own files and uPlot's, from the repo and node_modules: no build step, no CDN. */
const ASSETS: Record<string, { file: string, type: string }> = {
  'app.js': { file: join(pageDir, 'app.js'), type: 'text/javascript; charset=utf-8' },
  'style.css': { file: join(pageDir, 'style.css'), type: 'text/css; charset=utf-8' },
  'uplot.js': { file: join(uplotDir, 'uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  'uplot.css': { file: join(uplotDir, 'uPlot.min.css'), type: 'text/css; charset=utf-8' }
}

const HTML = 'text/html; charset=utf-8'
const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/**
 * GET /dashboard: a live page of the whole server; GET /dashboard/events: its stream (server-sent
 * events, one view a second of every process, as the primary gathers them); GET /dashboard/matrix:
 * the committed decision matrix as a page, its charts included. With AUTH_TOKEN set the page, its
 * stream and the matrix need the token (`?token=`, as /ws: a browser cannot set a header on an
 * EventSource or an image); the scripts and styles are the same for everyone and need none.
 */
export const dashboardRoutes: FastifyPluginAsync<{ feed: Feed }> = async (app, { feed }) => {
  await app.register(fastifySSE, { heartbeatInterval: 15_000 })
  const page = await readFile(join(pageDir, 'index.html'), 'utf8')
  const assets = new Map(await Promise.all(Object.entries(ASSETS).map(async ([name, a]) =>
    [name, { body: await readFile(a.file), type: a.type }] as const)))
  const streams = new Set<() => void>()
  // A stream never ends by itself: a drain closes them, or the server would wait on them to its deadline.
  app.addHook('preClose', async () => { for (const close of streams) close() })
  app.addHook('onClose', async () => { feed.close() })

  const data = { queryToken: true, neverShed: true }
  app.get('/dashboard', { config: data }, async (_request, reply) => reply.type(HTML).send(page))

  app.get<{ Params: { name: string } }>('/dashboard/assets/:name', { config: { open: true, neverShed: true } }, async (request, reply) => {
    const asset = assets.get(request.params.name)
    if (asset === undefined) return reply.callNotFound()
    return reply.type(asset.type).header('cache-control', 'public, max-age=3600').send(asset.body)
  })

  app.get('/dashboard/events', { sse: 'only', config: data }, async (request, reply) => {
    const sse = reply.sse
    sse.keepAlive()
    // Which process serves the stream (the views are of every process whichever does).
    reply.header('x-served-by-pid', String(process.pid))
    // A reconnecting EventSource says the last view it got: it gets only the ones after.
    let last = Number(sse.lastEventId ?? -1)
    if (!Number.isInteger(last)) last = -1
    let sending = false
    const push = async (): Promise<void> => {
      if (sending || !sse.isConnected) return
      sending = true
      try {
        for (const view of await feed.since(last)) {
          await sse.send({ id: String(view.seq), event: 'view', data: view })
          last = view.seq
        }
      } catch (err) {
        request.log.debug({ err }, 'dashboard view not sent')
      } finally {
        sending = false
      }
    }
    const timer = setInterval(() => { void push() }, VIEW_EVERY_MS)
    const close = (): void => { sse.close() }
    streams.add(close)
    sse.onClose(() => {
      clearInterval(timer)
      streams.delete(close)
    })
    await push()
  })

  app.get<{ Querystring: { token?: string } }>('/dashboard/matrix', { config: data }, async (request, reply) => {
    const markdown = await readFile(join(resultsDir, 'matrix.md'), 'utf8')
    // The charts are fetched by the browser: they carry the token the page was opened with.
    const token = request.query.token === undefined ? '' : `?token=${encodeURIComponent(request.query.token)}`
    const body = (await marked.parse(markdown)).replace(/src="charts\/([\w.-]+\.svg)"/g, `src="/dashboard/matrix/charts/$1${token}"`)
    return reply.type(HTML).send(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>The decision matrix</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/assets/style.css"></head>
<body class="report"><nav><a href="/dashboard${escapeHtml(token)}">live</a> | the decision matrix</nav>
<main>${body}</main></body></html>`)
  })

  app.get<{ Params: { name: string } }>('/dashboard/matrix/charts/:name', { config: data }, async (request, reply) => {
    const { name } = request.params
    const charts: string[] = await readdir(join(resultsDir, 'charts')).catch(() => [])
    if (!charts.includes(name) || !name.endsWith('.svg')) return reply.callNotFound()
    return reply.type('image/svg+xml').send(await readFile(join(resultsDir, 'charts', name)))
  })
}
