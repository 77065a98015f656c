import * as vega from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'

/** A vega-lite spec rendered to SVG in Node: no browser and no canvas needed for SVG. */
export async function renderSvg (spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' })
  return await view.toSVG()
}

type Datum = Record<string, string | number>

const base = { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', config: { font: 'sans-serif' } } as const

export function groupedBars (
  title: string, values: Datum[], x: string, y: string, color: string, yTitle: string, logY = false
): TopLevelSpec {
  return {
    ...base,
    title,
    data: { values },
    mark: 'bar',
    width: { step: 18 },
    height: 220,
    encoding: {
      column: { field: x, type: 'nominal', title: null, header: { labelAngle: 0, labelAlign: 'center', labelOrient: 'bottom' } },
      x: { field: color, type: 'nominal', axis: null },
      y: { field: y, type: 'quantitative', title: yTitle, ...(logY ? { scale: { type: 'log' } } : {}) },
      color: { field: color, type: 'nominal', title: null }
    }
  }
}

export function lines (
  title: string, values: Datum[], x: string, y: string, color: string, facet: string, xTitle: string, yTitle: string
): TopLevelSpec {
  return {
    ...base,
    title,
    data: { values },
    facet: { column: { field: facet, type: 'nominal', title: null } },
    spec: {
      width: 260,
      height: 220,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: x, type: 'quantitative', title: xTitle, scale: { type: 'log' } },
        y: { field: y, type: 'quantitative', title: yTitle },
        color: { field: color, type: 'nominal', title: null }
      }
    }
  }
}

export function bars (
  title: string, values: Datum[], x: string, y: string, yTitle: string, logY = false
): TopLevelSpec {
  return {
    ...base,
    title,
    data: { values },
    mark: 'bar',
    width: { step: 60 },
    height: 220,
    encoding: {
      x: { field: x, type: 'nominal', title: null, axis: { labelAngle: 0 } },
      y: { field: y, type: 'quantitative', title: yTitle, ...(logY ? { scale: { type: 'log' } } : {}) }
    }
  }
}

/** One panel of lines over a linear x: a time series. */
export function series (
  title: string, values: Datum[], x: string, y: string, color: string, xTitle: string, yTitle: string
): TopLevelSpec {
  return {
    ...base,
    title,
    data: { values },
    width: 560,
    height: 220,
    mark: { type: 'line', interpolate: 'step-after' },
    encoding: {
      x: { field: x, type: 'quantitative', title: xTitle },
      y: { field: y, type: 'quantitative', title: yTitle },
      color: { field: color, type: 'nominal', title: null }
    }
  }
}
