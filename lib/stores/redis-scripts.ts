/**
 * The Lua scripts that make RedisStore's changes atomic. Layout, for one primary key:
 * - the index, a hash at `<prefix>{<sha256 of key>}` with fields
 *   `n` (commit counter), `m:<id>` ('<seq> <sizeBytes> <meta JSON>'), `v:<id>` (varyKey) and,
 *   for a body of at most chunkBytes, `b:<id>` (the body itself);
 * - a larger body, a string at `<index>:<id>`, appended to while written and read with GETRANGE.
 * A variant is visible once its `m:` field exists, which only the commit script writes; a chunked
 * variant whose body string is gone or short (evicted, expired) is skipped and tidied away.
 */
import { luaScript } from './redis-connection.js'
import { MAX_VARIANTS_PER_KEY } from './store.js'

/**
 * A body replaced by a newer response, deleted (an invalidation) or found dead is kept this long for the
 * readers already at it, on any machine: a refresh of a large URL does not break the downloads in flight.
 */
export const REPLACED_BODY_GRACE_MS = 60_000

/**
 * How long a key's last deletion is marked (in `<index>:deleted`): a write whose request was looked up
 * before a deletion is not published within this long after it.
 */
export const DELETIONS_KEPT_MS = 10 * 60_000

const HELPERS = `
local function bodyKey(index, id) return index .. ':' .. id end
local function sizeOf(record) return tonumber(string.match(record, '^%d+ (%d+) ')) end
local function alive(index, id, record, inline)
  return inline ~= nil or redis.call('STRLEN', bodyKey(index, id)) == sizeOf(record)
end
local function dropVariant(index, id)
  redis.call('HDEL', index, 'm:' .. id, 'v:' .. id, 'b:' .. id)
  redis.call('PEXPIRE', bodyKey(index, id), ${REPLACED_BODY_GRACE_MS})
end
local function fieldMap(index)
  local fields = redis.call('HGETALL', index)
  local map = {}
  for i = 1, #fields, 2 do map[fields[i]] = fields[i + 1] end
  return map
end
-- Drops the other variants with this varyKey, and those whose body is gone; returns those kept
-- ({ id, seq }, the commit counter of each).
local function tidy(index, keep, varyKey)
  local map = fieldMap(index)
  local kept = {}
  for name, record in pairs(map) do
    if string.sub(name, 1, 2) == 'm:' then
      local id = string.sub(name, 3)
      if id ~= keep and (map['v:' .. id] == varyKey or not alive(index, id, record, map['b:' .. id])) then
        dropVariant(index, id)
      else
        table.insert(kept, { id = id, seq = tonumber(string.match(record, '^(%d+) ')) })
      end
    end
  end
  return kept
end
-- Keeps the newest max of the given variants (by commit counter), dropping the others.
local function trimVariants(index, variants, max)
  if #variants <= max then return end
  table.sort(variants, function(a, b) return a.seq > b.seq end)
  for i = max + 1, #variants do dropVariant(index, variants[i].id) end
end
local function expireAtLeast(key, ttlMs)
  if redis.call('PTTL', key) < ttlMs then redis.call('PEXPIRE', key, ttlMs) end
end
`

/**
 * KEYS: index. Returns the key's deletion mark (nil if none lately), then [id, record, inline body or
 * nil] for every variant whose body is complete.
 */
export const GET_SCRIPT = luaScript(`${HELPERS}
local index = KEYS[1]
local map = fieldMap(index)
local found = { redis.call('GET', index .. ':deleted') }
for name, record in pairs(map) do
  if string.sub(name, 1, 2) == 'm:' then
    local id = string.sub(name, 3)
    local inline = map['b:' .. id]
    if alive(index, id, record, inline) then
      table.insert(found, id)
      table.insert(found, record)
      table.insert(found, inline or false)
    end
  end
end
return found
`)

/**
 * KEYS: index, body. ARGV: id, varyKey, meta JSON, sizeBytes, ttlMs, inline ('1' or '0'), last bytes,
 * the deletion mark its request's lookup saw ('' for none, '-' when unknown). Publishes a variant,
 * replacing the one with the same varyKey; returns 0 when the body is incomplete, or when the key was
 * deleted since that lookup (RFC 9111 §4.4: the response may predate the change).
 */
export const COMMIT_SCRIPT = luaScript(`${HELPERS}
local index, body = KEYS[1], KEYS[2]
local id, varyKey, ttlMs = ARGV[1], ARGV[2], tonumber(ARGV[5])
if ARGV[8] ~= '-' and (redis.call('GET', index .. ':deleted') or '') ~= ARGV[8] then
  if ARGV[6] ~= '1' then redis.call('DEL', body) end
  return 0
end
if ARGV[6] == '1' then
  redis.call('HSET', index, 'b:' .. id, ARGV[7])
else
  if #ARGV[7] > 0 then redis.call('APPEND', body, ARGV[7]) end
  if redis.call('STRLEN', body) ~= tonumber(ARGV[4]) then
    redis.call('DEL', body)
    return 0
  end
  redis.call('PEXPIRE', body, ttlMs)
end
local seq = redis.call('HINCRBY', index, 'n', 1)
redis.call('HSET', index, 'm:' .. id, seq .. ' ' .. ARGV[4] .. ' ' .. ARGV[3], 'v:' .. id, varyKey)
trimVariants(index, tidy(index, id, varyKey), ${MAX_VARIANTS_PER_KEY})
expireAtLeast(index, ttlMs)
return 1
`)

/** KEYS: index. ARGV: id, varyKey, meta JSON, ttlMs. Replaces a variant's metadata; 0 if it is gone. */
export const UPDATE_SCRIPT = luaScript(`${HELPERS}
local index, id, varyKey, ttlMs = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[4])
local record = redis.call('HGET', index, 'm:' .. id)
if not record then return 0 end
redis.call('HSET', index, 'm:' .. id, string.match(record, '^%d+ %d+ ') .. ARGV[3], 'v:' .. id, varyKey)
tidy(index, id, varyKey)
redis.call('PEXPIRE', bodyKey(index, id), ttlMs)
expireAtLeast(index, ttlMs)
return 1
`)

/**
 * KEYS: index; ARGV: a random increment. Removes every variant (their bodies go after the grace period)
 * and moves the key's deletion mark on by the increment: a count by ones would start again at a value
 * a lookup saw before Redis restarted empty or evicted the mark. A mark that would overflow starts over.
 * Returns the new mark.
 */
export const DELETE_SCRIPT = luaScript(`
local index = KEYS[1]
local mark = index .. ':deleted'
local moved = redis.pcall('INCRBY', mark, ARGV[1])
if type(moved) == 'table' and moved.err then redis.call('SET', mark, ARGV[1]) end
redis.call('PEXPIRE', mark, ${DELETIONS_KEPT_MS})
for _, name in ipairs(redis.call('HKEYS', index)) do
  if string.sub(name, 1, 2) == 'm:' then
    redis.call('PEXPIRE', index .. ':' .. string.sub(name, 3), ${REPLACED_BODY_GRACE_MS})
  end
end
redis.call('DEL', index)
return redis.call('GET', mark)
`)

/** KEYS: body. ARGV: bytes, idle ttlMs. Appends to a body being written; returns its new length. */
export const APPEND_SCRIPT = luaScript(`
local length = redis.call('APPEND', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return length
`)
