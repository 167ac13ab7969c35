-- Leases up to ARGV[3] due notices to the worker ARGV[4] until ARGV[2]: pending ones due at
-- ARGV[1] (now), and those whose lease ended, earliest due first, ties by id. Each claim
-- counts one attempt. Returns id, notice JSON and attempt of each, flat.
--
-- KEYS[1]  the outbox's prefix, hash tag included (layout in outbox_enqueue.lua).
local p = KEYS[1]
local now, lease_until, max, worker = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]

-- Leases that ended wait, by due, to be claimed again (and count as claimed meanwhile).
local ended = redis.call('ZRANGEBYSCORE', p .. ':claimed', '-inf', now)
for _, id in ipairs(ended) do
  local due = redis.call('HGET', p .. ':n:' .. id, 'due')
  if due then
    redis.call('ZADD', p .. ':reclaim', due, id)
  end
  redis.call('ZREM', p .. ':claimed', id)
end

-- Both sets hold ties in id order: merge their heads by (due, id).
local a = redis.call('ZRANGEBYSCORE', p .. ':pending', '-inf', now, 'WITHSCORES', 'LIMIT', 0, max)
local b = redis.call('ZRANGEBYSCORE', p .. ':reclaim', '-inf', now, 'WITHSCORES', 'LIMIT', 0, max)
local i, j, taken = 1, 1, 0
local out = {}
while taken < max and (i <= #a or j <= #b) do
  local from_a
  if i > #a then
    from_a = false
  elseif j > #b then
    from_a = true
  else
    local da, db = tonumber(a[i + 1]), tonumber(b[j + 1])
    from_a = da < db or (da == db and a[i] < b[j])
  end
  local id, set
  if from_a then
    id, set, i = a[i], ':pending', i + 2
  else
    id, set, j = b[j], ':reclaim', j + 2
  end
  redis.call('ZREM', p .. set, id)
  local key = p .. ':n:' .. id
  local notice = redis.call('HGET', key, 'notice')
  -- A notice whose hash is gone (deleted by hand) leaves its set and is not claimed.
  if notice then
    local attempt = redis.call('HINCRBY', key, 'attempt', 1)
    redis.call('HSET', key, 'state', 'claimed', 'lease_until', lease_until, 'worker', worker)
    redis.call('ZADD', p .. ':claimed', lease_until, id)
    out[#out + 1] = id
    out[#out + 1] = notice
    out[#out + 1] = attempt
    taken = taken + 1
  end
end
return out
