/** The few statistics the matrix needs: a value measured several times, shown with its spread. */

export interface Spread {
  mean: number
  min: number
  max: number
  n: number
}

export function spread (values: readonly number[]): Spread {
  const finite = values.filter((v) => Number.isFinite(v))
  if (finite.length === 0) return { mean: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 }
  const sum = finite.reduce((a, b) => a + b, 0)
  return { mean: sum / finite.length, min: Math.min(...finite), max: Math.max(...finite), n: finite.length }
}

/** The middle value (the mean of the two middle ones for an even count); NaN when there is none. */
export function median (values: readonly number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** a / b, or NaN when either is missing or b is 0. */
export function ratio (a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : Number.NaN
}

/** "1,234" or "12.3" or "0.123": as many digits as a reader needs. */
export function fmt (n: number): string {
  if (!Number.isFinite(n)) return 'n/a'
  const abs = Math.abs(n)
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 })
}

/** "1,234 (1,200-1,260)" when measured more than once, else just the mean. */
export function fmtSpread (s: Spread): string {
  return s.n > 1 && s.max !== s.min ? `${fmt(s.mean)} (${fmt(s.min)}-${fmt(s.max)})` : fmt(s.mean)
}
