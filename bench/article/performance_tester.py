"""The article's PerformanceTester, its two measurements as the article wrote them (the chart and
the prints left out), run at each count given and printed as one JSON line per count:

    python3 performance_tester.py URL COUNT [COUNT...]
    {"concurrent": 100, "asyncioS": 1.13, "asyncioUnlimitedS": 1.1, "threadsS": 2.17, "ok": true}

asyncio: one aiohttp session, every GET started at once and gathered. Threads: requests.get, one
new connection each, on a ThreadPoolExecutor of 50 workers. Both with the libraries' defaults, as
the article ran them. One default decides the asyncio figure past 100 calls: an aiohttp session
opens at most 100 connections at a time, so the calls past the first 100 wait their turn; the
same test with that limit lifted (TCPConnector(limit=0)) is printed beside it. "ok": every call
of every test answered 200. Needs python3-aiohttp and python3-requests (Debian's packages).
"""
import asyncio
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import requests


async def async_test(url, concurrent, connector=None):
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.time()
        responses = await asyncio.gather(*[session.get(url) for _ in range(concurrent)])
        elapsed = time.time() - start
        return elapsed, sum(1 for r in responses if r.status == 200)


def sync_threaded_test(url, concurrent):
    with ThreadPoolExecutor(max_workers=50) as executor:
        start = time.time()
        results = list(executor.map(lambda _: requests.get(url), range(concurrent)))
        elapsed = time.time() - start
        return elapsed, sum(1 for r in results if r.status_code == 200)


async def async_test_unlimited(url, concurrent):
    return await async_test(url, concurrent, aiohttp.TCPConnector(limit=0))


def main():
    url, counts = sys.argv[1], [int(n) for n in sys.argv[2:]]
    for concurrent in counts:
        async_s, async_ok = asyncio.run(async_test(url, concurrent))
        unlimited_s, unlimited_ok = asyncio.run(async_test_unlimited(url, concurrent))
        threads_s, threads_ok = sync_threaded_test(url, concurrent)
        print(json.dumps({'concurrent': concurrent, 'asyncioS': round(async_s, 3),
                          'asyncioUnlimitedS': round(unlimited_s, 3), 'threadsS': round(threads_s, 3),
                          'ok': async_ok == unlimited_ok == threads_ok == concurrent}), flush=True)


if __name__ == '__main__':
    main()
