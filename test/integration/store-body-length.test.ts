import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { StoredEntry } from '../../lib/stores/store.js'
import { AsyncStore } from '../helpers/async-store.js'
import { makeAgent, send } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

// A store's contract: a body is its entry's sizeBytes long. One that breaks it must not end a response
// short or long: the read fails as a failing read does (README: a store failure never truncates a body).
const BODY = 'x'.repeat(5000)

/** An asynchronous MemoryStore whose bodies come back `changeBytes` shorter (or longer). */
class WrongLength extends AsyncStore {
  readonly #changeBytes: number

  constructor(changeBytes: number) {
    super(new MemoryStore())
    this.#changeBytes = changeBytes
  }

  override async get(key: string): Promise<StoredEntry[]> {
    const entries = await super.get(key)
    return entries.map((entry) => ({ ...entry, readBody: () => this.#changed(entry.readBody()) }))
  }

  async *#changed(body: Iterable<Buffer> | AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const whole: Buffer[] = []
    for await (const piece of body) whole.push(piece)
    const bytes = Buffer.concat(whole)
    yield this.#changeBytes < 0
      ? bytes.subarray(0, bytes.length + this.#changeBytes)
      : Buffer.concat([bytes, Buffer.alloc(this.#changeBytes, 'y')])
  }
}

/** A MemoryStore whose one-piece bodies are cut short. */
class ShortPieces extends MemoryStore {
  override get(key: string): StoredEntry[] {
    return super.get(key).map((entry) => ({ ...entry, body: entry.body?.subarray(0, 100) }))
  }
}

/** An entry as a class instance whose methods read a private field: called as methods, they work. */
class RangedEntry {
  readonly #body: Buffer

  constructor(entry: StoredEntry) {
    const { body, readBody: _readBody, ...meta } = entry
    Object.assign(this, meta)
    this.#body = body ?? Buffer.alloc(0)
  }

  readBody(): Buffer[] {
    return [this.#body]
  }

  readRange(startBytes: number, endBytes: number): Buffer[] {
    return [this.#body.subarray(startBytes, endBytes)]
  }
}

/** A MemoryStore that answers with RangedEntry instances. */
class ClassEntries extends MemoryStore {
  override get(key: string): StoredEntry[] {
    return super.get(key).map((entry) => new RangedEntry(entry) as unknown as StoredEntry)
  }
}

let origin: Origin
before(async () => {
  origin = await startOrigin((req, res) => {
    if (req.url === '/revalidated-range') {
      if (req.headers['if-none-match'] === '"r"') return reply(res, 304, { etag: '"r"' })
      return reply(res, 200, { 'cache-control': 'no-cache', etag: '"r"' }, BODY)
    }
    const etag: Record<string, string> = req.url?.includes('etag') ? { etag: '"strong"' } : {}
    const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''))
    if (range && req.headers['if-range'] === '"strong"') {
      const start = Number(range[1])
      const headers = { ...etag, 'content-range': `bytes ${start}-${BODY.length - 1}/${BODY.length}` }
      return reply(res, 206, headers, BODY.slice(start))
    }
    reply(res, 200, { 'cache-control': 'max-age=60', ...etag }, BODY)
  })
})
after(() => origin.close())

describe('a store that hands back a body of the wrong length', () => {
  for (const changeBytes of [-4900, 5]) {
    const how = changeBytes < 0 ? 'short' : 'long'
    test(`${how}, with a strong ETag: the caller gets the whole body, the rest from the origin`, async () => {
      const cache = makeAgent(new WrongLength(changeBytes))
      try {
        const url = `${origin.url}/etag-${how}`
        await send(cache.agent, url)
        const hit = await send(cache.agent, url)
        assert.equal(hit.body, BODY)
        assert.equal(origin.count(`/etag-${how}`), 2)
      } finally {
        await cache.close()
      }
    })

    test(`${how}, without a validator: the caller gets an error, never a body of the wrong length`, async () => {
      const cache = makeAgent(new WrongLength(changeBytes))
      try {
        const url = `${origin.url}/plain-${how}`
        await send(cache.agent, url)
        await assert.rejects(send(cache.agent, url), /stored body of 5000 bytes read/)
      } finally {
        await cache.close()
      }
    })
  }

  test('in one piece, short: the request goes to the origin', async () => {
    const cache = makeAgent(new ShortPieces())
    try {
      const url = `${origin.url}/piece`
      await send(cache.agent, url)
      const again = await send(cache.agent, url)
      assert.equal(again.body, BODY)
      assert.equal(origin.count('/piece'), 2)
    } finally {
      await cache.close()
    }
  })
})

test("a Range served after a 304 reads through the entry's readRange as its method (a class's uses `this`)", async () => {
  const cache = makeAgent(new ClassEntries())
  try {
    const url = `${origin.url}/revalidated-range`
    await send(cache.agent, url)
    const part = await send(cache.agent, url, { headers: { range: 'bytes=10-19' } })
    assert.equal(part.status, 206)
    assert.equal(part.body, BODY.slice(10, 20))
    assert.equal(part.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
  } finally {
    await cache.close()
  }
})
