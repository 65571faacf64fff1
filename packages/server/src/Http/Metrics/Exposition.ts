/**
 * The Prometheus text exposition format (version 0.0.4): metric families with their type, and the
 * families of Effect's metric registry (counters, gauges, histograms with cumulative buckets).
 *
 * @since 0.4.0
 */
import type * as MetricPair from "effect/MetricPair"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"

type Labels = Readonly<Record<string, string>>

/**
 * One sample: labels, value, and the suffix of the family's name (`_bucket`, `_sum`, `_count`).
 *
 * @since 0.4.0
 */
export type Sample = readonly [labels: Labels, value: number, suffix?: string]

/**
 * A metric family: every sample of one metric name.
 *
 * @since 0.4.0
 */
export interface Family {
  readonly name: string
  readonly help: string
  readonly type: "gauge" | "counter" | "histogram"
  readonly samples: ReadonlyArray<Sample>
}

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")
const escapeHelp = (value: string) => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

const number = (value: number) =>
  Number.isNaN(value) ? "NaN" : value === Infinity ? "+Inf" : value === -Infinity ? "-Inf" : String(value)

const sampleLine = (name: string, [labels, value, suffix = ""]: Sample) => {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`)
  return `${name}${suffix}${pairs.length === 0 ? "" : `{${pairs.join(",")}}`} ${number(value)}`
}

/**
 * Renders metric families as Prometheus text.
 *
 * @since 0.4.0
 */
export const render = (families: ReadonlyArray<Family>): string =>
  families.map((family) =>
    [
      `# HELP ${family.name} ${escapeHelp(family.help)}`,
      `# TYPE ${family.name} ${family.type}`,
      ...family.samples.map((sample) => sampleLine(family.name, sample))
    ].join("\n")
  ).join("\n") + "\n"

const labelsOf = (pair: MetricPair.MetricPair.Untyped): Labels =>
  Object.fromEntries(pair.metricKey.tags.map((label) => [label.key, label.value]))

/** The samples of one series, or undefined for the kinds of metric not exposed (frequency, summary). */
const samplesOf = (pair: MetricPair.MetricPair.Untyped): {
  readonly type: Family["type"]
  readonly samples: ReadonlyArray<Sample>
} | undefined => {
  const labels = labelsOf(pair)
  const state: unknown = pair.metricState
  if (MetricState.isCounterState(state)) return { type: "counter", samples: [[labels, Number(state.count)]] }
  if (MetricState.isGaugeState(state)) return { type: "gauge", samples: [[labels, Number(state.value)]] }
  if (MetricState.isHistogramState(state)) {
    const buckets: Array<Sample> = state.buckets.map(([le, count]) => [{ ...labels, le: number(le) }, count, "_bucket"])
    if (state.buckets[state.buckets.length - 1]?.[0] !== Infinity) {
      buckets.push([{ ...labels, le: "+Inf" }, state.count, "_bucket"])
    }
    return { type: "histogram", samples: [...buckets, [labels, state.sum, "_sum"], [labels, state.count, "_count"]] }
  }
  return undefined
}

const byFirst = (a: readonly [string, unknown], b: readonly [string, unknown]) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0

/**
 * The families of a registry snapshot whose names start with `prefix`, by name, and their series by
 * labels.
 *
 * @since 0.4.0
 */
export const fromSnapshot = (
  snapshot: ReadonlyArray<MetricPair.MetricPair.Untyped>,
  prefix: string
): ReadonlyArray<Family> => {
  const families = new Map<
    string,
    { help: string; type: Family["type"]; series: Array<readonly [string, ReadonlyArray<Sample>]> }
  >()
  for (const pair of snapshot) {
    const key = pair.metricKey
    const series = key.name.startsWith(prefix) ? samplesOf(pair) : undefined
    if (series === undefined) continue
    const family = families.get(key.name) ??
      { help: Option.getOrElse(key.description, () => key.name), type: series.type, series: [] }
    // a name registered with two kinds of metric: the first kind seen is exposed
    if (series.type !== family.type) continue
    families.set(key.name, family)
    family.series.push([JSON.stringify(labelsOf(pair)), series.samples])
  }
  return [...families.entries()].sort(byFirst).map(([name, family]) => ({
    name,
    help: family.help,
    type: family.type,
    samples: family.series.sort(byFirst).flatMap(([, samples]) => samples)
  }))
}
