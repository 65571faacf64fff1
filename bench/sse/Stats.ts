/**
 * The numbers of one fan-out run, from what the subscribers received and what the server recorded.
 */
import type { Report } from "./Server.js"
import type { Subscriber } from "./Subscribers.js"

/** Percentiles of a sample, in ms. */
export interface Percentiles {
  readonly samples: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly max: number
}

/** Nearest-rank percentiles (sorts `values` in place). */
export const percentiles = (values: Float64Array): Percentiles => {
  values.sort()
  const n = values.length
  const at = (p: number) => n === 0 ? Number.NaN : values[Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))] ?? NaN
  return { samples: n, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: n === 0 ? Number.NaN : values[n - 1] ?? NaN }
}

/** Everything one run measured. */
export interface RunStats {
  readonly subscribers: number
  /** events in the batch's log (each subscriber should get all of them) */
  readonly eventsPerSubscriber: number
  /** of which committed after every subscriber was connected (the latency samples) */
  readonly liveEvents: number
  readonly deliveries: number
  readonly failures: number
  /** why subscribers failed, with counts */
  readonly reasons: ReadonlyArray<readonly [string, number]>
  /** receipt − the event row's write time (database clock), per delivery of a live event */
  readonly commitToReceipt: Percentiles
  /** receipt − the event's `at` (app clock before the commit statement), per delivery of a live event */
  readonly atToReceipt: Percentiles
  /** the orchestrator's announcement (`pg_notify` hint) − the row's write time, per live event */
  readonly commitToAnnounce: Percentiles
  /** the first subscriber's receipt − the row's write time, per live event */
  readonly commitToFirst: Percentiles
  /** the live events that took longest to reach their first subscriber: sequence, tag, ms */
  readonly slowest: ReadonlyArray<readonly [number, string, number]>
  /** the last subscriber's receipt − the first's, per live event (the fan-out itself) */
  readonly firstToLast: Percentiles
  /** every subscriber's response headers in */
  readonly headersMs: number
  /** every subscriber caught up with the events before `go` (subscribed, replay done) */
  readonly connectMs: number
  /** from `go` until the batch settled (server) */
  readonly runMs: number
  /** from `go` until the last subscriber received the terminal event */
  readonly drainMs: number
  readonly deliveriesPerSecond: number
  readonly connectCpuMs: number
  /** server heap / RSS growth per connected subscriber (bytes), after forced GCs */
  readonly heapPerSubscriber: number
  readonly rssPerSubscriber: number
  readonly serverCpuMs: number
  readonly databaseCpuMs: number | null
  readonly clientCpuMs: number
}

/** `[seq, ms]` pairs as an array indexed by sequence (NaN where missing). */
const bySeq = (pairs: ReadonlyArray<readonly [number, number]>, lastSeq: number) => {
  const out = new Float64Array(lastSeq + 1).fill(Number.NaN)
  for (const [seq, ms] of pairs) if (seq <= lastSeq) out[seq] = ms
  return out
}

/** For each sequence, when it was first announced (an announcement covers every sequence up to its own). */
const announcedBySeq = (pairs: ReadonlyArray<readonly [number, number]>, lastSeq: number) => {
  const out = new Float64Array(lastSeq + 1).fill(Number.NaN)
  let covered = 0
  for (const [seq, ms] of [...pairs].sort((a, b) => a[1] - b[1])) {
    for (let s = covered + 1; s <= Math.min(seq, lastSeq); s++) out[s] = ms
    covered = Math.max(covered, seq)
  }
  return out
}

/** Summarizes one run. */
export const summarize = (input: {
  readonly subscribers: ReadonlyArray<Subscriber>
  readonly report: typeof Report.Type
  /** the last sequence before `go` */
  readonly readySeq: number
  readonly goAt: number
  readonly headersMs: number
  readonly connectMs: number
  readonly clientCpuMs: number
}): RunStats => {
  const { readySeq, report, subscribers } = input
  const lastSeq = report.lastSeq
  const written = bySeq(report.written, lastSeq)
  const at = bySeq(report.at, lastSeq)
  const announced = announcedBySeq(report.announced, lastSeq)
  const live = lastSeq - readySeq
  const commitToReceipt = new Float64Array(live * subscribers.length)
  const atToReceipt = new Float64Array(live * subscribers.length)
  const first = new Float64Array(lastSeq + 1).fill(Number.POSITIVE_INFINITY)
  const last = new Float64Array(lastSeq + 1).fill(Number.NEGATIVE_INFINITY)
  const reasons = new Map<string, number>()
  let samples = 0
  let deliveries = 0
  let failures = 0
  let lastReceipt = input.goAt
  for (const subscriber of subscribers) {
    deliveries += subscriber.events
    if (!subscriber.complete(lastSeq)) {
      failures++
      const reason = subscriber.verdict(lastSeq)
      reasons.set(reason, (reasons.get(reason) ?? 0) + 1)
    }
    for (let seq = readySeq + 1; seq <= lastSeq; seq++) {
      const received = subscriber.receivedAt[seq] ?? Number.NaN
      if (Number.isNaN(received)) continue
      commitToReceipt[samples] = received - (written[seq] ?? Number.NaN)
      atToReceipt[samples] = received - (at[seq] ?? Number.NaN)
      samples++
      first[seq] = Math.min(first[seq] ?? received, received)
      last[seq] = Math.max(last[seq] ?? received, received)
      lastReceipt = Math.max(lastReceipt, received)
    }
  }
  const perEvent = (f: (seq: number) => number) => {
    const out = new Float64Array(live)
    for (let i = 0; i < live; i++) out[i] = f(readySeq + 1 + i)
    return percentiles(out.filter((x) => Number.isFinite(x)))
  }
  const drainMs = lastReceipt - input.goAt
  const slowest = Array.from({ length: live }, (_, i) => readySeq + 1 + i)
    .map((seq) => [seq, report.tags[seq - 1] ?? "?", (first[seq] ?? NaN) - (written[seq] ?? NaN)] as const)
    .sort((a, b) => b[2] - a[2])
    .slice(0, 5)
  return {
    subscribers: subscribers.length,
    eventsPerSubscriber: lastSeq,
    liveEvents: live,
    deliveries,
    failures,
    reasons: [...reasons],
    commitToReceipt: percentiles(commitToReceipt.subarray(0, samples)),
    atToReceipt: percentiles(atToReceipt.subarray(0, samples)),
    commitToAnnounce: perEvent((seq) => (announced[seq] ?? NaN) - (written[seq] ?? NaN)),
    commitToFirst: perEvent((seq) => (first[seq] ?? NaN) - (written[seq] ?? NaN)),
    slowest,
    firstToLast: perEvent((seq) => (last[seq] ?? NaN) - (first[seq] ?? NaN)),
    headersMs: input.headersMs,
    connectMs: input.connectMs,
    runMs: report.runMs,
    drainMs,
    deliveriesPerSecond: samples / (drainMs / 1000),
    connectCpuMs: report.connectCpuMs,
    heapPerSubscriber: (report.memoryConnected.heap - report.memoryBefore.heap) / subscribers.length,
    rssPerSubscriber: (report.memoryConnected.rss - report.memoryBefore.rss) / subscribers.length,
    serverCpuMs: report.cpuMs,
    databaseCpuMs: report.databaseCpuMs,
    clientCpuMs: input.clientCpuMs
  }
}

const ms = (x: number) => Number.isFinite(x) ? x.toFixed(1) : "–"
const int = (x: number) => Math.round(x).toLocaleString("en-US")
const row = (p: Percentiles) => `${ms(p.p50)} / ${ms(p.p90)} / ${ms(p.p99)} / ${ms(p.max)}`

/** The runs side by side, as a Markdown table (one column per run). */
export const table = (runs: ReadonlyArray<readonly [name: string, stats: RunStats]>): string => {
  const lines: Array<readonly [string, (s: RunStats) => string]> = [
    ["subscribers", (s) => int(s.subscribers)],
    ["events per subscriber (live after connect)", (s) => `${int(s.eventsPerSubscriber)} (${int(s.liveEvents)})`],
    ["total deliveries", (s) => int(s.deliveries)],
    ["failures (incomplete, out of order, gap, duplicate)", (s) => int(s.failures)],
    ["commit → receipt p50 / p90 / p99 / max (ms)", (s) => row(s.commitToReceipt)],
    ["`at` → receipt p50 / p90 / p99 / max (ms)", (s) => row(s.atToReceipt)],
    ["commit → announce, per event (ms)", (s) => row(s.commitToAnnounce)],
    ["commit → first subscriber, per event (ms)", (s) => row(s.commitToFirst)],
    ["first → last subscriber, per event (ms)", (s) => row(s.firstToLast)],
    ["connect all: headers / subscribed and caught up (ms)", (s) => `${int(s.headersMs)} / ${int(s.connectMs)}`],
    ["server CPU while connecting (ms)", (s) => int(s.connectCpuMs)],
    [
      "server memory per connected subscriber: heap / RSS (KiB, after GC)",
      (s) => `${ms(s.heapPerSubscriber / 1024)} / ${ms(s.rssPerSubscriber / 1024)}`
    ],
    ["batch run (go → settled) / drain (go → last receipt) (ms)", (s) => `${int(s.runMs)} / ${int(s.drainMs)}`],
    ["deliveries per second (live)", (s) => int(s.deliveriesPerSecond)],
    [
      "CPU during the run: server / Postgres backends / subscribers (ms)",
      (s) =>
        `${int(s.serverCpuMs)} / ${s.databaseCpuMs === null ? "in server" : int(s.databaseCpuMs)} / ${
          int(s.clientCpuMs)
        }`
    ]
  ]
  return [
    `| | ${runs.map(([name]) => name).join(" | ")} |`,
    `|---|${runs.map(() => "---:").join("|")}|`,
    ...lines.map(([label, f]) => `| ${label} | ${runs.map(([, s]) => f(s)).join(" | ")} |`)
  ].join("\n")
}
