/**
 * The article's PerformanceTester in its own language: performance_tester.py, run by a python3 that
 * has aiohttp and requests, against a URL (the delay service's /delay/1000, as the article used
 * httpbin's /delay/1).
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { projectRoot } from '../../src/paths.js'

const execFileAsync = promisify(execFile)
const TESTER_PY = `${projectRoot}/bench/article/performance_tester.py`

/** Seconds until every call is answered: aiohttp as written (100 connections at most), unlimited, 50 threads. */
export interface PythonSeconds { asyncioS: number, asyncioUnlimitedS: number, threadsS: number }

/** A python3 that has aiohttp and requests (Debian's python3-aiohttp and python3-requests), or why there is none. */
export async function findPython (): Promise<{ bin: string, version: string } | { skipped: string }> {
  const probe = 'import sys, aiohttp, requests; print(sys.version.split()[0], aiohttp.__version__, requests.__version__)'
  for (const bin of ['python3', '/usr/bin/python3']) {
    try {
      const { stdout } = await execFileAsync(bin, ['-c', probe])
      const [python, aiohttp, requests] = stdout.trim().split(' ')
      return { bin, version: `Python ${python}, aiohttp ${aiohttp}, requests ${requests}` }
    } catch {} // not there, or without the libraries: the next one
  }
  return { skipped: 'no python3 with aiohttp and requests here (Debian: python3-aiohttp python3-requests)' }
}

/** The tester at each count, one after the other; fails unless every call of every test answered 200. */
export async function runArticleTester (
  python: string, url: string, counts: number[]
): Promise<Array<{ calls: number, seconds: PythonSeconds }>> {
  const { stdout } = await execFileAsync(python, [TESTER_PY, url, ...counts.map(String)], { timeout: 30 * 60_000 })
  return stdout.trim().split('\n').map((line) => {
    const { concurrent, ok, ...seconds } = JSON.parse(line) as { concurrent: number, ok: boolean } & PythonSeconds
    if (!ok) throw new Error(`the article's tester: not every call answered 200 at ${concurrent} at once: ${line}`)
    return { calls: concurrent, seconds }
  })
}
