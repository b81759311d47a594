/**
 * RFC 9111 §4: of the responses stored for one variant, a cache uses the most recent. Two requests for
 * one variant can both be at the origin (one that may not wait on the other: a reload while an older
 * download goes on, a waiter let go): the answer to the one sent last is kept, and an older download
 * that ends later is not committed over it. Known to this process only, per store object.
 */

import { perStore } from './per-store.js'
import { LruMap } from './stores/lru-map.js'

/** Variants whose last commit is remembered; an older one's order is not known. */
const VARIANTS_KEPT = 10_000

let sends = 0

/** The next request's place in the order requests are made in this process (Exchange.sentOrder). */
export function nextSendOrder(): number {
  sends += 1
  return sends
}

export class CommitOrder {
  /** The sentOrder of the request of each variant's last committed response. */
  readonly #sentOrder = new LruMap<string, number>(VARIANTS_KEPT)

  /** Whether a response to the request sent `sentOrder`th is older than the variant's last committed one. */
  outdated(key: string, varyKey: string, sentOrder: number): boolean {
    const newest = this.#sentOrder.get(variantOf(key, varyKey))
    return newest !== undefined && newest > sentOrder
  }

  /** A response to the request sent `sentOrder`th is being committed (a failed commit leaves it noted). */
  committing(key: string, varyKey: string, sentOrder: number): void {
    const variant = variantOf(key, varyKey)
    this.#sentOrder.set(variant, Math.max(this.#sentOrder.get(variant) ?? sentOrder, sentOrder))
  }
}

function variantOf(key: string, varyKey: string): string {
  return `${varyKey}\n${key}`
}

/** The commit order every interceptor on a store shares. */
export const commitOrderOf = perStore(() => new CommitOrder())
