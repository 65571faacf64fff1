/**
 * A strict parser of the Prometheus text exposition format (0.0.4), for tests: `# HELP` and
 * `# TYPE` lines, samples with labels and escaped values, every sample in the family its TYPE line
 * declared just before, no series twice, counters not negative, and histograms with cumulative
 * buckets ending in `+Inf`, a `_sum` and a `_count` equal to the `+Inf` bucket. Throws on anything else.
 */

export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped"

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export interface Family {
  readonly name: string
  readonly type: MetricType
  readonly help: string | undefined
  readonly samples: ReadonlyArray<Sample>
}

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const types: ReadonlyArray<string> = ["counter", "gauge", "histogram", "summary", "untyped"]
const isType = (kind: string): kind is MetricType => types.includes(kind)

/** Undoes the escapes of a HELP text (`\\` and `\n`, nothing else). */
const unescapeHelp = (text: string, line: number) =>
  text.replace(/\\(.?)/g, (_, c: string) => {
    if (c === "\\") return "\\"
    if (c === "n") return "\n"
    throw new Error(`line ${line}: a bad escape \\${c} in HELP`)
  })

const parseValue = (text: string, line: number): number => {
  if (text === "+Inf") return Infinity
  if (text === "-Inf") return -Infinity
  if (text === "NaN") return NaN
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`line ${line}: bad value ${text}`)
  return Number(text)
}

/** Reads `{name="value",...}` from `text` at `from` (at the `{`); returns the labels and where they end. */
const parseLabels = (text: string, from: number, line: number) => {
  const labels: Record<string, string> = {}
  let i = from + 1
  const fail = (why: string): never => {
    throw new Error(`line ${line}: ${why} in ${text}`)
  }
  while (text[i] !== "}") {
    const eq = text.indexOf("=", i)
    if (eq < 0) fail("a label without =")
    const name = text.slice(i, eq)
    if (!labelName.test(name)) fail(`bad label name ${JSON.stringify(name)}`)
    if (Object.hasOwn(labels, name)) fail(`label ${name} twice`)
    if (text[eq + 1] !== "\"") fail("an unquoted label value")
    let value = ""
    i = eq + 2
    while (text[i] !== "\"") {
      const c = text[i]
      if (c === undefined) fail("an unterminated label value")
      if (c === "\n") fail("a raw newline in a label value")
      if (c === "\\") {
        const next = text[i + 1]
        if (next === "\\") value += "\\"
        else if (next === "\"") value += "\""
        else if (next === "n") value += "\n"
        else fail(`a bad escape \\${next}`)
        i += 2
      } else {
        value += c
        i++
      }
    }
    labels[name] = value
    i++
    if (text[i] === ",") i++
    else if (text[i] !== "}") fail("labels not separated by ,")
  }
  return { labels, end: i + 1 }
}

/** The family a sample name belongs to, given the family declared last. */
const belongs = (sample: string, family: { readonly name: string; readonly type: MetricType }) => {
  if (sample === family.name) return family.type !== "histogram"
  if (family.type === "histogram") {
    return [`${family.name}_bucket`, `${family.name}_sum`, `${family.name}_count`].includes(sample)
  }
  if (family.type === "summary") return [`${family.name}_sum`, `${family.name}_count`].includes(sample)
  return false
}

const seriesKey = (labels: Readonly<Record<string, string>>, without?: string) =>
  JSON.stringify(Object.entries(labels).filter(([k]) => k !== without).sort(([a], [b]) => a < b ? -1 : 1))

/** Checks every histogram series: buckets cumulative in `le`, ending in `+Inf`, `_count` = `+Inf`. */
const checkHistogram = (family: Family) => {
  const series = new Map<string, { buckets: Array<[number, number]>; sum?: number; count?: number }>()
  const of = (labels: Readonly<Record<string, string>>) => {
    const key = seriesKey(labels, "le")
    const found = series.get(key) ?? { buckets: [] }
    series.set(key, found)
    return found
  }
  for (const sample of family.samples) {
    const s = of(sample.labels)
    if (sample.name.endsWith("_bucket")) {
      const le = sample.labels.le
      if (le === undefined) throw new Error(`${family.name}: a bucket without le`)
      s.buckets.push([parseValue(le, 0), sample.value])
    } else if (sample.name.endsWith("_sum")) {
      s.sum = sample.value
    } else {
      s.count = sample.value
    }
  }
  for (const [key, s] of series) {
    const where = `${family.name}${key}`
    if (s.sum === undefined || s.count === undefined) throw new Error(`${where}: no _sum or no _count`)
    if (s.buckets.length === 0) throw new Error(`${where}: no buckets`)
    for (let i = 1; i < s.buckets.length; i++) {
      const [le, count] = s.buckets[i]!
      const [previousLe, previousCount] = s.buckets[i - 1]!
      if (!(le > previousLe)) throw new Error(`${where}: le not increasing at ${le}`)
      if (count < previousCount) throw new Error(`${where}: buckets not cumulative at le=${le}`)
    }
    const last = s.buckets[s.buckets.length - 1]!
    if (last[0] !== Infinity) throw new Error(`${where}: the last bucket is not +Inf`)
    if (last[1] !== s.count) throw new Error(`${where}: _count ${s.count} is not the +Inf bucket ${last[1]}`)
  }
}

/** Parses an exposition, by family name; throws on any deviation from the format. */
export const parse = (text: string): ReadonlyMap<string, Family> => {
  if (!text.endsWith("\n")) throw new Error("the exposition does not end with a newline")
  const families = new Map<
    string,
    { name: string; type: MetricType; help: string | undefined; samples: Array<Sample> }
  >()
  const helps = new Map<string, string>()
  const seen = new Set<string>()
  let current: { name: string; type: MetricType; samples: Array<Sample> } | undefined
  const lines = text.slice(0, -1).split("\n")
  lines.forEach((raw, index) => {
    const line = index + 1
    if (raw === "") throw new Error(`line ${line}: an empty line`)
    const help = /^# HELP (\S+) (.*)$/.exec(raw)
    if (help !== null) {
      const [, name = "", doc = ""] = help
      if (!metricName.test(name)) throw new Error(`line ${line}: bad metric name ${name}`)
      if (helps.has(name)) throw new Error(`line ${line}: HELP for ${name} twice`)
      helps.set(name, unescapeHelp(doc, line))
      return
    }
    const type = /^# TYPE (\S+) (\S+)$/.exec(raw)
    if (type !== null) {
      const [, name = "", kind = ""] = type
      if (!metricName.test(name)) throw new Error(`line ${line}: bad metric name ${name}`)
      if (!isType(kind)) throw new Error(`line ${line}: unknown type ${kind}`)
      if (families.has(name)) throw new Error(`line ${line}: TYPE for ${name} twice`)
      current = { name, type: kind, samples: [] }
      families.set(name, { ...current, help: undefined, samples: current.samples })
      return
    }
    if (raw.startsWith("#")) return
    const nameEnd = raw.search(/[{ ]/)
    if (nameEnd <= 0) throw new Error(`line ${line}: not a sample: ${raw}`)
    const name = raw.slice(0, nameEnd)
    if (!metricName.test(name)) throw new Error(`line ${line}: bad metric name ${name}`)
    const { end, labels } = raw[nameEnd] === "{" ? parseLabels(raw, nameEnd, line) : { end: nameEnd, labels: {} }
    const rest = raw.slice(end)
    if (!/^ \S+( -?\d+)?$/.test(rest)) throw new Error(`line ${line}: bad value or timestamp: ${raw}`)
    const value = parseValue(rest.trim().split(" ")[0] ?? "", line)
    if (current === undefined || !belongs(name, current)) {
      throw new Error(`line ${line}: ${name} is not in the family declared before it (${current?.name})`)
    }
    const key = `${name}${seriesKey(labels)}`
    if (seen.has(key)) throw new Error(`line ${line}: series ${key} twice`)
    seen.add(key)
    if (current.type === "counter" && !(value >= 0)) throw new Error(`line ${line}: a negative counter`)
    current.samples.push({ name, labels, value })
  })
  const result = new Map<string, Family>()
  for (const [name, family] of families) {
    const parsed: Family = { ...family, help: helps.get(name) }
    if (parsed.type === "histogram") checkHistogram(parsed)
    result.set(name, parsed)
  }
  for (const name of helps.keys()) if (!families.has(name)) throw new Error(`HELP for ${name} without a TYPE`)
  return result
}

/** The sum of a family's samples named `name` whose labels include `labels` (0 when there are none). */
export const total = (
  families: ReadonlyMap<string, Family>,
  name: string,
  labels: Readonly<Record<string, string>> = {}
): number => {
  let sum = 0
  for (const family of families.values()) {
    for (const sample of family.samples) {
      if (sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v)) {
        sum += sample.value
      }
    }
  }
  return sum
}
