/* global uPlot, EventSource, window, document, requestAnimationFrame */
// The live page: one view a second from /dashboard/events (every process's last second, gathered by
// the cluster's primary), drawn as numbers, tables and uPlot charts of the last five minutes.
'use strict'

const KEEP = 300 // views: five minutes at one a second
// The servers' latency buckets (src/dashboard/sample.ts): eight to a decade from 0.1 ms, then the rest.
const BOUNDS = Array.from({ length: 45 }, (_, k) => Number((10 ** ((k - 8) / 8)).toPrecision(3))).concat([Infinity])
const token = new URLSearchParams(window.location.search).get('token')
const query = token === null ? '' : `?token=${encodeURIComponent(token)}`

const $ = (id) => document.getElementById(id)
const sum = (xs) => xs.reduce((a, b) => a + b, 0)
const fmt = (n, digits = 3) => !Number.isFinite(n) ? '-' : Math.abs(n) >= 1000 ? Math.round(n).toLocaleString('en-US') : Number(n.toPrecision(digits)).toString()

function quantile (buckets, share) {
  const total = sum(buckets)
  if (total === 0) return NaN
  let seen = 0
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i]
    if (seen >= share * total) return BOUNDS[i]
  }
  return Infinity
}

/** The whole server's figures of one view. */
function totals (view) {
  const ps = view.processes
  const perS = (p, n) => n / Math.max(p.intervalS, 1e-3)
  const byVia = { inline: 0, pool: 0, 'event-loop': 0 }
  const byTask = {}
  const errors = {}
  const latency = new Array(BOUNDS.length).fill(0)
  for (const p of ps) {
    for (const [task, vias] of Object.entries(p.jobs)) {
      byTask[task] ??= { inline: 0, pool: 0, 'event-loop': 0 }
      for (const [via, n] of Object.entries(vias)) {
        byVia[via] = (byVia[via] ?? 0) + perS(p, n)
        byTask[task][via] = (byTask[task][via] ?? 0) + perS(p, n)
      }
    }
    for (const [code, n] of Object.entries(p.errors)) errors[code] = (errors[code] ?? 0) + perS(p, n)
    p.latency.forEach((n, i) => { latency[i] += n })
  }
  const pools = ps.filter((p) => p.pool !== undefined).map((p) => p.pool)
  const poolMax = sum(pools.map((p) => p.maxThreads))
  return {
    at: view.at / 1000,
    jobsPerS: sum(Object.values(byVia)),
    byVia,
    byTask,
    errors,
    errorsPerS: sum(Object.values(errors)),
    shedPerS: errors.OVERLOADED ?? 0,
    p50: quantile(latency, 0.5),
    p99: quantile(latency, 0.99),
    loopDelayP99: Math.max(0, ...ps.map((p) => p.loop.delayP99Ms)),
    loopBusy: 100 * Math.max(0, ...ps.map((p) => p.loop.utilization)),
    poolThreads: sum(pools.map((p) => p.threads)),
    poolMax,
    poolQueued: sum(pools.map((p) => p.queued)),
    // Of all the pools' threads together: each pool's share weighed by its threads.
    poolBusy: pools.length === 0 ? NaN : 100 * sum(pools.map((p) => p.busy * p.maxThreads)) / poolMax,
    websockets: sum(ps.map((p) => p.websockets.connections))
  }
}

// Each chart: its series, and how a view's totals give their values.
const CHARTS = [
  { id: 'chart-jobs', series: [['inline', (t) => t.byVia.inline], ['pool', (t) => t.byVia.pool], ['event-loop', (t) => t.byVia['event-loop']]] },
  { id: 'chart-latency', series: [['p50 ms', (t) => t.p50], ['p99 ms', (t) => t.p99]], log: true },
  { id: 'chart-loop', series: [['delay p99 ms', (t) => t.loopDelayP99], ['busy %', (t) => t.loopBusy]] },
  { id: 'chart-pool', series: [['waiting', (t) => t.poolQueued], ['busy %', (t) => t.poolBusy]] },
  { id: 'chart-errors', series: [['errors/s', (t) => t.errorsPerS], ['shed/s', (t) => t.shedPerS]] }
]
const COLOURS = ['#2563eb', '#dc2626', '#059669', '#d97706']
const history = []
const charts = CHARTS.map((c) => {
  const el = $(c.id)
  // eslint-disable-next-line new-cap -- uPlot's own name for its constructor
  return new uPlot({
    width: Math.max(300, el.clientWidth || 560),
    height: 180,
    scales: { x: { time: true }, y: c.log ? { distr: 3 } : {} },
    series: [{}, ...c.series.map(([label], i) => ({ label, stroke: COLOURS[i], width: 1.5, spanGaps: false }))]
  }, [[], ...c.series.map(() => [])], el)
})

function draw () {
  const xs = history.map((t) => t.at)
  CHARTS.forEach((c, k) => {
    charts[k].setData([xs, ...c.series.map(([, pick]) => history.map((t) => {
      const v = pick(t)
      return Number.isFinite(v) && !(c.log && v <= 0) ? v : null
    }))])
  })
}

function row (cells, className) {
  const tr = document.createElement('tr')
  if (className !== undefined) tr.className = className
  for (const c of cells) {
    const td = document.createElement('td')
    td.textContent = c
    tr.append(td)
  }
  return tr
}

const seenPids = new Map() // pid -> the last sample of a process, to show it as gone for a while
function showProcesses (view) {
  const body = $('processes').tBodies[0]
  const now = new Set(view.processes.map((p) => p.pid))
  for (const p of view.processes) seenPids.set(p.pid, { sample: p, lastAt: view.at })
  const rows = []
  for (const [pid, { sample: p, lastAt }] of seenPids) {
    if (!now.has(pid) && view.at - lastAt > 30_000) {
      seenPids.delete(pid)
      continue
    }
    const jobs = sum(Object.values(p.jobs).flatMap((v) => Object.values(v))) / Math.max(p.intervalS, 1e-3)
    rows.push(row([
      p.worker ?? '-', String(p.pid), String(p.uptimeS), fmt(jobs), fmt(p.loop.delayP99Ms), fmt(100 * p.loop.utilization),
      p.pool === undefined ? '-' : `${p.pool.threads} / ${p.pool.maxThreads}`, p.pool === undefined ? '-' : fmt(100 * p.pool.busy),
      p.pool === undefined ? '-' : String(p.pool.queued), String(p.websockets.connections), fmt(p.rssBytes / 2 ** 20)
    ], now.has(pid) ? undefined : 'gone'))
  }
  body.replaceChildren(...rows)
}

function showTables (t) {
  $('tasks').tBodies[0].replaceChildren(...Object.entries(t.byTask).sort().map(([task, v]) =>
    row([task, fmt(v.inline ?? 0), fmt(v.pool ?? 0), fmt(v['event-loop'] ?? 0)])))
  $('errors').tBodies[0].replaceChildren(...Object.entries(t.errors).sort().map(([code, n]) => row([code, fmt(n)])))
}

function showAuto (view) {
  const withAuto = view.processes.filter((p) => p.auto !== undefined)
  $('auto').hidden = withAuto.length === 0
  if (withAuto.length === 0) return
  $('auto-round-trip').textContent = 'pool round trip (the crossing, estimated): ' +
    withAuto.map((p) => `pid ${p.pid} ${p.auto.roundTripMs === undefined ? 'not measured yet' : `${fmt(p.auto.roundTripMs)} ms`}`).join(', ')
  $('auto').tBodies[0].replaceChildren(...withAuto.flatMap((p) => p.auto.tasks.map((a) =>
    row([String(p.pid), a.key, a.runMs === undefined ? '-' : fmt(a.runMs), a.placement, a.reason, String(a.jobs)]))))
}

function showEvents (view) {
  for (const e of view.events) {
    const li = document.createElement('li')
    li.className = e.what
    li.textContent = `${new Date(e.at).toLocaleTimeString()}: worker ${e.worker} (pid ${e.pid}) ${e.what}${e.how === undefined ? '' : ` (${e.how})`}`
    $('events').prepend(li)
  }
}

function show (view) {
  const t = totals(view)
  history.push(t)
  if (history.length > KEEP) history.shift()
  const c = view.config
  $('config').textContent = `MODE=${c.mode}, PROCESSES=${c.processes}, THREADS=${c.threads}, CPU_JOBS=${c.cpuJobs}, ` +
    `IO_JOBS=${c.ioJobs}, shedding ${c.shedding ? 'on' : 'off'}, auth ${c.auth ? 'on' : 'off'}`
  $('jobs-per-s').textContent = fmt(t.jobsPerS)
  $('p50').textContent = Number.isFinite(t.p50) ? `${fmt(t.p50)} ms` : '-'
  $('p99').textContent = Number.isFinite(t.p99) ? `${fmt(t.p99)} ms` : '-'
  $('errors-per-s').textContent = fmt(t.errorsPerS)
  $('shed-per-s').textContent = fmt(t.shedPerS)
  $('process-count').textContent = String(view.processes.length) + (view.late.length > 0 ? ` (+${view.late.length} late)` : '')
  $('pool-threads').textContent = t.poolMax === 0 ? 'no pool' : `${t.poolThreads} / ${t.poolMax}`
  $('ws-connections').textContent = String(t.websockets)
  showProcesses(view)
  showTables(t)
  showAuto(view)
  showEvents(view)
}

$('matrix-link').href = `/dashboard/matrix${query}`
const stream = new EventSource(`/dashboard/events${query}`)
let pending = false
stream.addEventListener('view', (event) => {
  show(JSON.parse(event.data))
  // A page that was away gets the views it missed at once: drawn once, after the last of them.
  if (!pending) {
    pending = true
    requestAnimationFrame(() => { pending = false; draw() })
  }
})
stream.addEventListener('open', () => { $('status').textContent = 'live'; $('status').className = 'status live' })
stream.addEventListener('error', () => { $('status').textContent = 'reconnecting'; $('status').className = 'status lost' })
