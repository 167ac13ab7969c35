-- The outbox's notices by state at ARGV[1] (now): pending, pending and due, claimed (leases
-- that ended included), delivered, failed.
--
-- KEYS[1]  the outbox's prefix, hash tag included (layout in outbox_enqueue.lua).
local p = KEYS[1]
return {
  redis.call('ZCARD', p .. ':pending'),
  redis.call('ZCOUNT', p .. ':pending', '-inf', ARGV[1]),
  redis.call('ZCARD', p .. ':claimed') + redis.call('ZCARD', p .. ':reclaim'),
  redis.call('ZCARD', p .. ':delivered'),
  redis.call('ZCARD', p .. ':failed'),
}
