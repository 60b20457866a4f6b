/**
 * The Lua scripts of the cluster-wide client directory (schema in src/cluster/keys.ts). Each runs atomically in
 * Redis, so two nodes racing for one client_id are ordered by Redis and exactly one claim wins.
 *
 * An entry is `{"f":fence,"n":node,"i":incarnation,"c":client info JSON}` in the `{p}dir` hash. It is live
 * while `{p}node:<n>` holds `i`; an entry whose node's lease is gone (expired, or taken by a newer incarnation)
 * counts as absent.
 */

/**
 * CLAIM  KEYS: dir, fence, own lease   ARGV: client_id, node, incarnation, info JSON, node key prefix, channel
 * Refuses (-1) when the caller's own lease does not hold its incarnation: a fenced node's writes are refused.
 * Refuses (0, holder node) when a live entry holds the id, on any node, this one included.
 * Otherwise writes a new entry with fence = INCR(fence) (so a fence only grows), publishes `add`, and returns
 * (1, fence).
 */
export const CLAIM_SCRIPT = `if redis.call('GET', KEYS[3]) ~= ARGV[3] then return {-1, false} end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local e = cjson.decode(cur)
  if redis.call('GET', ARGV[5] .. e.n) == e.i then return {0, e.n} end
end
local f = tostring(redis.call('INCR', KEYS[2]))
local v = cjson.encode({f = f, n = ARGV[2], i = ARGV[3], c = ARGV[4]})
redis.call('HSET', KEYS[1], ARGV[1], v)
redis.call('PUBLISH', ARGV[6], cjson.encode({op = 'add', id = ARGV[1], e = v}))
return {1, f}`;

/**
 * RELEASE  KEYS: dir   ARGV: client_id, fence, node, incarnation, channel
 * Deletes the entry only if it is still this registration's (same fence, node and incarnation), publishes
 * `del`, and returns 1; otherwise changes nothing and returns 0.
 */
export const RELEASE_SCRIPT = `local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local e = cjson.decode(cur)
if e.f ~= ARGV[2] or e.n ~= ARGV[3] or e.i ~= ARGV[4] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[5], cjson.encode({op = 'del', id = ARGV[1], f = e.f}))
return 1`;

/**
 * EVICT  KEYS: dir   ARGV: client_id, entry as read, node key prefix, channel
 * The janitor's sweep of a dead node's entry: deletes it only if it is unchanged since it was read and its
 * node's lease still does not hold its incarnation; publishes `del`. Returns 1 or 0. Any node may run it, any
 * number of times.
 */
export const EVICT_SCRIPT = `local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur ~= ARGV[2] then return 0 end
local e = cjson.decode(cur)
if redis.call('GET', ARGV[3] .. e.n) == e.i then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[4], cjson.encode({op = 'del', id = ARGV[1], f = e.f}))
return 1`;
