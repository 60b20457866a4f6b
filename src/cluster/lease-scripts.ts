/**
 * The Lua scripts of node liveness (see keys.ts for the schema). Each runs atomically in Redis.
 *
 * JOIN   KEYS: lease, nodes, epoch   ARGV: incarnation, leaseMs, nodeId, epoch candidate
 *        Sets the epoch if there is none, takes the lease for this incarnation (whatever held it: an older
 *        incarnation of this node id is dead or paused, and a paused one is fenced at its next renewal), and
 *        records the heartbeat. Returns {epoch, previous lease value or false}.
 *
 * RENEW  KEYS: lease, nodes, epoch   ARGV: incarnation, leaseMs, nodeId, epoch
 *        Extends the lease only if it still holds this incarnation and the epoch is unchanged. Returns
 *        1 renewed; 0 the lease is gone or held by another incarnation (this node was paused past its lease:
 *        fenced, it must never renew silently); -1 the epoch is gone or different (Redis lost its data).
 *
 * LEAVE  KEYS: lease, nodes          ARGV: incarnation, nodeId
 *        Drops the lease and the heartbeat only if they are this incarnation's. Returns 1 or 0.
 */

const NOW_MS = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

export const JOIN_SCRIPT = `${NOW_MS}
redis.call('SET', KEYS[3], ARGV[4], 'NX')
local epoch = redis.call('GET', KEYS[3])
local prev = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[3])
return {epoch, prev}`;

export const RENEW_SCRIPT = `${NOW_MS}
if redis.call('GET', KEYS[3]) ~= ARGV[4] then return -1 end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[3])
return 1`;

export const LEAVE_SCRIPT = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1`;
