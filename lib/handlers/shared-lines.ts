/**
 * Field names and values as latin1 Buffers for old-API handlers, shared by every response that repeats
 * them: a hit repeats all of its stored fields, and a new Buffer for each of a 1 KiB hit's 14 names and
 * values cost ~2 µs of a ~12 µs hit. The Buffers are views of one slab; when the slab or the table
 * is full the table starts over on a new slab, so what it keeps is bounded (SLAB_BYTES of lines, and
 * the strings that name them). Long lines are encoded for their response alone. undici's handlers only
 * read these Buffers; a handler that wrote into one would change later responses' lines.
 */
const SLAB_BYTES = 32 * 1024
const MAX_LINES = 2048
const MAX_SHARED_CHARS = 256

let slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
let usedBytes = 0
const shared = new Map<string, Buffer>()

function startOver(): void {
  slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
  usedBytes = 0
  shared.clear()
}

/** `text` as latin1 bytes, the same Buffer each time it repeats while it stays in the table. */
function encodedLine(text: string): Buffer {
  if (text.length > MAX_SHARED_CHARS) return Buffer.from(text, 'latin1')
  const known = shared.get(text)
  if (known !== undefined) return known
  if (usedBytes + text.length > SLAB_BYTES || shared.size >= MAX_LINES) startOver()
  const start = usedBytes
  usedBytes += slab.write(text, start, 'latin1')
  const line = slab.subarray(start, usedBytes)
  // keyed by a copy: `text` may be a slice that keeps a larger string alive; one that latin1 cannot
  // hold (a character above U+00FF) would never be looked up by its copy, so it is not kept
  const copy = line.toString('latin1')
  if (copy === text) shared.set(copy, line)
  return line
}

/**
 * One name/value pair per field line. undici 7's own adapter gives a repeated field as one name with a
 * nested array of values, which undici 6 joins with commas: two Set-Cookie lines became one.
 */
export function rawLines(headers: Record<string, string | string[] | undefined>): Buffer[] {
  const raw: Buffer[] = []
  for (const name of Object.keys(headers)) {
    const value = headers[name]
    if (Array.isArray(value)) for (const line of value) raw.push(encodedLine(name), encodedLine(String(line)))
    else if (value !== undefined) raw.push(encodedLine(name), encodedLine(String(value)))
  }
  return raw
}
