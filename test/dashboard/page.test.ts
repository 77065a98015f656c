import { existsSync } from 'node:fs'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { runLoad } from '../../bench/load/run.js'
import { loadDefaults } from '../../bench/load/options.js'
import { startServer, waitFor, type RunningServer } from '../helpers.js'

// Debian's chromium, driven by playwright-core (no browser download). .ci/run installs it and sets
// REQUIRE_BROWSER=1, where its absence fails; elsewhere the page tests run where it is installed.
const CHROMIUM = '/usr/bin/chromium'
const runnable = existsSync(CHROMIUM) || process.env.REQUIRE_BROWSER === '1'

let browser: Browser | undefined
let server: RunningServer | undefined
beforeAll(async () => {
  if (runnable) browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
})
afterAll(async () => { await browser?.close() })
afterEach(async () => {
  await server?.stop('SIGKILL')
  server = undefined
})

/** A page, with everything that went wrong in it: console errors, page errors, failed or refused requests. */
async function open (url: string): Promise<{ page: Page, problems: string[], servedBy: () => number | undefined }> {
  const page = await (browser as Browser).newPage({ viewport: { width: 1280, height: 900 } })
  const problems: string[] = []
  let servedBy: number | undefined
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`) })
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
  page.on('requestfailed', (r) => problems.push(`failed: ${r.url()} ${r.failure()?.errorText ?? ''}`))
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${r.status()}: ${r.url()}`)
    if (r.url().includes('/dashboard/events')) servedBy = Number(r.headers()['x-served-by-pid'])
  })
  await page.goto(url)
  return { page, problems, servedBy: () => servedBy }
}

const number = async (page: Page, id: string): Promise<number> => Number((await page.textContent(`#${id}`))?.replaceAll(',', ''))

describe.skipIf(!runnable)('the dashboard in a real browser', () => {
  it('loads with no error, moves under load, and shows a killed worker replaced', async () => {
    server = await startServer({ MODE: 'hybrid', PROCESSES: '2' })
    const { page, problems, servedBy } = await open(`${server.url}/dashboard`)
    try {
      await page.waitForSelector('#status.live')
      await waitFor(async () => await number(page, 'process-count') === 2)
      expect(await page.textContent('#config')).toContain('MODE=hybrid, PROCESSES=2')
      // Under a short load its numbers move: jobs/s, the task table, the chart.
      const load = runLoad(loadDefaults(server.url, { connections: 8, duration: 3, mix: [{ task: 'fib', input: { n: 20 }, weight: 1 }] }))
      await waitFor(async () => await number(page, 'jobs-per-s') > 0, 10_000)
      await page.waitForSelector('#tasks tbody tr')
      expect(await page.textContent('#tasks tbody')).toContain('fib')
      expect(await page.textContent('#p99')).toMatch(/ms$/)
      if (process.env.DASHBOARD_SCREENSHOT !== undefined) {
        await new Promise((resolve) => setTimeout(resolve, 2000)) // a few points on the charts
        await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT, fullPage: true })
      }
      expect((await load).ok).toBeGreaterThan(0)
      expect(await page.locator('#chart-jobs canvas').count()).toBe(1)
      // The worker that does not serve the page's stream: SIGKILLed, shown as died, its replacement as started.
      const rows = await page.$$eval('#processes tbody tr td:nth-child(2)', (tds) => tds.map((td) => Number(td.textContent)))
      const victim = rows.find((pid) => pid !== servedBy()) as number
      process.kill(victim, 'SIGKILL')
      await page.waitForSelector(`#events li.died:has-text("pid ${victim}")`, { timeout: 10_000 })
      await page.waitForSelector('#events li.started', { timeout: 15_000 })
      await waitFor(async () => {
        const live = await page.$$eval('#processes tbody tr:not(.gone) td:nth-child(2)', (tds) => tds.map((td) => Number(td.textContent)))
        return live.length === 2 && !live.includes(victim)
      }, 15_000)
      expect(problems).toEqual([])
    } finally {
      await page.close()
    }
  }, 60_000)

  it('shows the decision matrix with its charts', async () => {
    server = await startServer({ MODE: 'event-loop' })
    const { page, problems } = await open(`${server.url}/dashboard/matrix`)
    try {
      expect(await page.textContent('h1')).toContain('decision matrix')
      const images = await page.$$eval('img', (imgs) => imgs.map((i) => ({ src: i.src, loaded: i.complete && i.naturalWidth > 0 })))
      expect(images.length).toBeGreaterThan(2)
      for (const image of images) expect(image.loaded, image.src).toBe(true)
      expect(problems).toEqual([])
    } finally {
      await page.close()
    }
  }, 30_000)

  it('with AUTH_TOKEN set, refuses the page without the token and serves it with ?token=', async () => {
    server = await startServer({ MODE: 'event-loop', AUTH_TOKEN: 'sesame' })
    const page = await (browser as Browser).newPage()
    try {
      expect((await page.goto(`${server.url}/dashboard`))?.status()).toBe(401)
      expect((await page.goto(`${server.url}/dashboard?token=sesame`))?.status()).toBe(200)
      await page.waitForSelector('#status.live')
      expect(await page.textContent('#config')).toContain('auth on')
    } finally {
      await page.close()
    }
  }, 30_000)
})
