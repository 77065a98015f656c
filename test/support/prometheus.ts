/** Sums a metric's samples whose labels include `match`, from Prometheus text. */
export function sum (text: string, name: string, match: Record<string, string> = {}): number {
  let total = 0
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null || m[1] !== name) continue
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]))
    if (Object.entries(match).every(([k, v]) => labels[k] === v)) total += Number(m[3])
  }
  return total
}
