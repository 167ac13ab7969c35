-- Settles attempt ARGV[2] of notice ARGV[1] as ARGV[3] ('delivered', 'retry' or 'failed') at
-- ARGV[4] (for a retry: when to try again), with the error ARGV[5] ('' for none). Returns 1,
-- or 0 (and changes nothing) when that attempt is no longer the notice's current claim.
--
-- KEYS[1]  the outbox's prefix, hash tag included (layout in outbox_enqueue.lua).
local p = KEYS[1]
local id, attempt, outcome, at, err = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = p .. ':n:' .. id
local held = redis.call('HMGET', key, 'state', 'attempt')
if held[1] ~= 'claimed' or held[2] ~= attempt then
  return 0
end
redis.call('ZREM', p .. ':claimed', id)
redis.call('ZREM', p .. ':reclaim', id)
redis.call('HDEL', key, 'lease_until', 'worker')
if err ~= '' then
  redis.call('HSET', key, 'error', err)
end
if outcome == 'retry' then
  redis.call('HSET', key, 'state', 'pending', 'due', at)
  redis.call('ZADD', p .. ':pending', at, id)
else
  redis.call('HSET', key, 'state', outcome, 'settled_at', at)
  redis.call('ZADD', p .. ':' .. outcome, at, id)
end
return 1
