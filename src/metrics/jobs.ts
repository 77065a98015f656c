/** A metric as prom-client's registry reads it (get()), by name, type and labelled values. */
export interface Exported {
  name: string
  help: string
  type: 'counter' | 'histogram'
  aggregator: 'sum'
  values: Array<{ labels: Record<string, string | number>, value: number, metricName?: string }>
}

/** One label set's numbers. */
interface Series {
  readonly labels: Readonly<Record<string, string>>
  /** Per bucket (cumulated at export), then the +Inf count. */
  readonly buckets: Float64Array
  sum: number
  count: number
}

/**
 * The per-job counter and histograms, kept as plain numbers on the job path and handed to
 * prom-client only when it is scraped. prom-client's own Counter and Histogram check and hash
 * their labels and make a closure on every call: a few microseconds and some garbage per job,
 * which a trivial job notices. These are registered in the same registry, in the same format, so
 * /metrics and the cluster's aggregation (summed by name and labels) read them as theirs.
 */
abstract class JobMetric<L extends string> {
  readonly aggregator = 'sum' as const
  protected readonly series: Series[] = []
  /** Each label set's series, one level of Map per label: found without building a key string. */
  #byLabels = new Map<string, unknown>()

  constructor (
    readonly name: string,
    readonly help: string,
    readonly type: Exported['type'],
    protected readonly labelNames: readonly L[],
    protected readonly bounds: readonly number[] = []
  ) {}

  protected seriesOf (values: readonly string[]): Series {
    let level = this.#byLabels
    const last = values.length - 1
    for (let i = 0; i < last; i++) {
      const value = values[i] as string
      let next = level.get(value) as Map<string, unknown> | undefined
      if (next === undefined) level.set(value, next = new Map())
      level = next
    }
    const value = values[last] as string
    let s = level.get(value) as Series | undefined
    if (s === undefined) {
      const labels = Object.fromEntries(this.labelNames.map((name, i) => [name, values[i] as string]))
      s = { labels, buckets: new Float64Array(this.bounds.length), sum: 0, count: 0 }
      level.set(value, s)
      this.series.push(s)
    }
    return s
  }

  abstract get (): Promise<Exported>

  reset (): void {
    this.series.length = 0
    this.#byLabels = new Map()
  }
}

export class JobCounter<L extends string> extends JobMetric<L> {
  constructor (name: string, help: string, labelNames: readonly L[]) {
    super(name, help, 'counter', labelNames)
  }

  inc (...values: string[]): void {
    this.seriesOf(values).count++
  }

  async get (): Promise<Exported> {
    const values = this.series.map((s) => ({ labels: s.labels, value: s.count }))
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }
}

export class JobHistogram<L extends string> extends JobMetric<L> {
  constructor (name: string, help: string, labelNames: readonly L[], bounds: readonly number[]) {
    super(name, help, 'histogram', labelNames, bounds)
  }

  observe (seconds: number, ...values: string[]): void {
    const s = this.seriesOf(values)
    s.sum += seconds
    s.count++
    for (let i = 0; i < this.bounds.length; i++) {
      if (seconds <= (this.bounds[i] as number)) {
        s.buckets[i] = (s.buckets[i] as number) + 1
        return
      }
    }
  }

  async get (): Promise<Exported> {
    const values: Exported['values'] = []
    for (const s of this.series) {
      let cumulated = 0
      this.bounds.forEach((le, i) => {
        cumulated += s.buckets[i] as number
        values.push({ labels: { ...s.labels, le }, value: cumulated, metricName: `${this.name}_bucket` })
      })
      values.push({ labels: { ...s.labels, le: '+Inf' }, value: s.count, metricName: `${this.name}_bucket` })
      values.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` })
      values.push({ labels: s.labels, value: s.count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }
}
