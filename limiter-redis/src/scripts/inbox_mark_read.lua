-- Marks item ARGV[1] of a tenant's inbox read at ARGV[2] if it is there and unread; returns 1
-- if it changed.
--
-- KEYS[1]  the tenant's prefix (layout in inbox_put.lua).
local p = KEYS[1]
local id = ARGV[1]
if redis.call('HEXISTS', p .. ':items', id) == 0 or redis.call('HEXISTS', p .. ':reads', id) == 1 then
  return 0
end
redis.call('HSET', p .. ':reads', id, ARGV[2])
redis.call('ZREM', p .. ':unread', id)
return 1
