/**
 * A hand-written SVG bar chart of the request-rate results: one group of bars per scenario, one bar
 * per client, its req/s written above it. Rates differ a thousandfold between scenarios, so each group
 * is scaled to its own fastest cache; a ceiling bar far above that is drawn cut, with a break mark.
 */
import type { Summary } from './report.js'
import { CEILING_CLIENT, CLIENT_NAMES, type ClientName } from './scenarios.js'

const BAR_WIDTH_PX = 20
const BAR_GAP_PX = 4
const GROUP_GAP_PX = 28
const PLOT_HEIGHT_PX = 260
const MARGIN_LEFT_PX = 24
const MARGIN_TOP_PX = 136
const MARGIN_BOTTOM_PX = 48
const LEGEND_ITEM_WIDTH_PX = 190
/** A bar taller than this many times the group's fastest cache is cut to that height. */
const CUT_RATIO = 1.25
const BREAK_MARK_DEPTH_PX = 14

const COLORS: Record<ClientName, string> = {
  raw: '#9c9c9c',
  'undici-cache-builtin': '#f28e2b',
  'undici-cache-sqlite': '#4e79a7',
  'undici-cache-memory': '#76b7b2',
  ceiling: '#59a14f',
}

/** What the chart says about the run, under its title. */
export interface ChartCaption {
  title: string
  subtitle: string
}

function escapeXml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
}

function text(x: number, y: number, content: string, attributes = ''): string {
  return `<text x="${x}" y="${y}" ${attributes}>${escapeXml(content)}</text>`
}

function rateOf(row: Summary): number {
  return Number.isFinite(row.reqPerSec) ? row.reqPerSec : 0
}

/** The req/s a full-height bar of the group stands for. */
function groupScale(rows: readonly Summary[]): number {
  const fastest = Math.max(0, ...rows.map(rateOf))
  const fastestCache = Math.max(0, ...rows.filter((row) => row.client !== CEILING_CLIENT).map(rateOf))
  return fastestCache > 0 ? Math.min(fastest, fastestCache * CUT_RATIO) : fastest
}

/** One bar and its value, written upwards above it; a bar beyond the scale is cut and marked. */
function bar(x: number, row: Summary, scale: number): string {
  const rate = rateOf(row)
  const heightPx = scale > 0 ? Math.max(1, Math.round(Math.min(1, rate / scale) * PLOT_HEIGHT_PX)) : 0
  const topY = MARGIN_TOP_PX + PLOT_HEIGHT_PX - heightPx
  const labelX = x + BAR_WIDTH_PX / 2 + 4
  const labelY = topY - 4
  const label = Number.isFinite(row.reqPerSec) ? String(row.reqPerSec) : 'failed'
  const tooltip = `<title>${escapeXml(`${row.client}: ${label} req/s`)}</title>`
  const breakY = topY + BREAK_MARK_DEPTH_PX
  const breakMark =
    rate > scale
      ? `<path d="M${x - 2} ${breakY + 4} L${x + BAR_WIDTH_PX + 2} ${breakY - 4}" stroke="#fff" stroke-width="4"/>`
      : ''
  return [
    `<rect x="${x}" y="${topY}" width="${BAR_WIDTH_PX}" height="${heightPx}" fill="${COLORS[row.client]}">${tooltip}</rect>`,
    breakMark,
    text(labelX, labelY, label, `transform="rotate(-90 ${labelX} ${labelY})" class="value"`),
  ].join('')
}

function groupWidth(bars: number): number {
  return bars * (BAR_WIDTH_PX + BAR_GAP_PX) - BAR_GAP_PX
}

/** The bars of one scenario, starting at `x`, and its name under them. */
function group(x: number, scenario: string, rows: readonly Summary[]): string {
  const scale = groupScale(rows)
  const bars = rows.map((row, index) => bar(x + index * (BAR_WIDTH_PX + BAR_GAP_PX), row, scale))
  const labelY = MARGIN_TOP_PX + PLOT_HEIGHT_PX + 18
  const label = text(x + groupWidth(rows.length) / 2, labelY, scenario, 'text-anchor="middle" class="group"')
  return `<g>${bars.join('')}${label}</g>`
}

function legend(clients: readonly ClientName[]): string {
  return clients
    .map((client, index) => {
      const x = MARGIN_LEFT_PX + index * LEGEND_ITEM_WIDTH_PX
      const square = `<rect x="${x}" y="62" width="12" height="12" fill="${COLORS[client]}"/>`
      return square + text(x + 18, 72, client, 'class="legend"')
    })
    .join('')
}

function byScenario(rows: readonly Summary[]): Map<string, Summary[]> {
  const groups = new Map<string, Summary[]>()
  for (const row of rows) groups.set(row.scenario, [...(groups.get(row.scenario) ?? []), row])
  const order = (row: Summary) => CLIENT_NAMES.indexOf(row.client)
  for (const list of groups.values()) list.sort((a, b) => order(a) - order(b))
  return groups
}

const STYLE = `<style>
text { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; fill: #222; }
.title { font-size: 18px; font-weight: 600; } .subtitle { font-size: 12px; fill: #555; }
.legend { font-size: 12px; } .group { font-size: 11px; } .value { font-size: 10px; fill: #333; }
</style>`

/** The SVG document for the request-rate rows (fill rows left out). */
export function barChartSvg(rows: readonly Summary[], caption: ChartCaption): string {
  const groups = byScenario(rows.filter((row) => row.entries === 0))
  let x = MARGIN_LEFT_PX
  const parts: string[] = []
  for (const [scenario, groupRows] of groups) {
    parts.push(group(x, scenario, groupRows))
    x += groupWidth(groupRows.length) + GROUP_GAP_PX
  }
  const clients = CLIENT_NAMES.filter((client) => rows.some((row) => row.client === client))
  const widthPx = Math.max(x - GROUP_GAP_PX + MARGIN_LEFT_PX, clients.length * LEGEND_ITEM_WIDTH_PX + 40)
  const heightPx = MARGIN_TOP_PX + PLOT_HEIGHT_PX + MARGIN_BOTTOM_PX
  const axisY = MARGIN_TOP_PX + PLOT_HEIGHT_PX
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${widthPx}" height="${heightPx}" viewBox="0 0 ${widthPx} ${heightPx}">`,
    STYLE,
    `<rect width="${widthPx}" height="${heightPx}" fill="#fff"/>`,
    text(MARGIN_LEFT_PX, 26, caption.title, 'class="title"'),
    text(MARGIN_LEFT_PX, 46, caption.subtitle, 'class="subtitle"'),
    legend(clients),
    `<line x1="${MARGIN_LEFT_PX}" y1="${axisY}" x2="${widthPx - MARGIN_LEFT_PX}" y2="${axisY}" stroke="#888"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n')
}
