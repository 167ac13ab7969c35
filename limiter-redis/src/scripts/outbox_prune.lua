-- Removes up to ARGV[2] delivered and failed notices settled before ARGV[1]; returns how
-- many. The client calls again while a call removes as many as it may.
--
-- KEYS[1]  the outbox's prefix, hash tag included (layout in outbox_enqueue.lua).
local p = KEYS[1]
local before, limit = ARGV[1], tonumber(ARGV[2])
local removed = 0
for _, set in ipairs({':delivered', ':failed'}) do
  if removed >= limit then
    break
  end
  local ids = redis.call('ZRANGEBYSCORE', p .. set, '-inf', '(' .. before, 'LIMIT', 0,
    limit - removed)
  for _, id in ipairs(ids) do
    redis.call('DEL', p .. ':n:' .. id)
    redis.call('ZREM', p .. set, id)
  end
  removed = removed + #ids
end
return removed
