/**
 * The open batch's trends: throughput and p95 item duration per sampled window, as a small chart
 * (inline SVG built element by element), with the slowdown status and the baseline.
 */
import type { Answer } from "./Client.js"
import { $, clear, formatMs, h } from "./Dom.js"

type Trends = Answer<"GetTrends">
type Window = Trends["windows"][number]

const svgNs = "http://www.w3.org/2000/svg"
const width = 480
const height = 90

const svg = <K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Readonly<Record<string, string>>
): SVGElementTagNameMap[K] => {
  const element = document.createElementNS(svgNs, tag)
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value)
  return element
}

/** A line of `values` (undefined: no point) scaled to the chart's height, over evenly spaced windows. */
const line = (values: ReadonlyArray<number | undefined>, className: string): SVGPolylineElement | null => {
  const max = Math.max(0, ...values.filter((v): v is number => v !== undefined))
  if (max === 0) return null
  const step = values.length > 1 ? width / (values.length - 1) : 0
  const points = values.flatMap((v, i) =>
    v === undefined ? [] : [`${(i * step).toFixed(1)},${(height - 4 - (v / max) * (height - 8)).toFixed(1)}`]
  )
  return svg("polyline", { points: points.join(" "), class: className, fill: "none" })
}

const statusText: Record<Trends["status"], string> = {
  off: "slowdown detection off",
  learning: "learning its baseline",
  normal: "normal",
  slow: "slowed down"
}

/** Renders the trends into `#trends`. */
export const renderTrends = (trends: Trends): void => {
  const box = $("trends")
  clear(box)
  const windows: ReadonlyArray<Window> = trends.windows
  const baseline = trends.baseline
  const summary = "Trends: " + statusText[trends.status] +
    (trends.window === undefined ? "" : " · windows of " + trends.window) +
    (baseline === undefined
      ? ""
      : " · baseline " + baseline.throughput.toFixed(1) + "/s" +
        (baseline.p95Ms === null ? "" : ", p95 " + formatMs(baseline.p95Ms)))
  box.appendChild(h("div", { className: "trends-head" }, summary))
  if (windows.length === 0) return
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "trend-chart", role: "img" })
  chart.appendChild(svg("title", {})).textContent = "throughput (solid) and p95 duration (dashed) per window"
  const throughput = line(windows.map((w) => w.throughput), "trend-throughput")
  const p95 = line(windows.map((w) => w.p95Ms), "trend-p95")
  if (throughput !== null) chart.appendChild(throughput)
  if (p95 !== null) chart.appendChild(p95)
  box.appendChild(chart)
  const last = windows[windows.length - 1]!
  box.appendChild(
    h(
      "div",
      { className: "muted" },
      windows.length + " windows · latest " + last.throughput.toFixed(1) + "/s" +
        (last.p95Ms === undefined ? "" : ", p95 " + formatMs(last.p95Ms)) + ", backlog " + last.backlog
    )
  )
}
