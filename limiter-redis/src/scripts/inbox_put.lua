-- Adds item ARGV[1] (its JSON ARGV[2], at ARGV[3], read at ARGV[4] or '' if unread) to a
-- tenant's inbox unless it holds the id; returns 1 if added. A redelivery changes nothing,
-- so it never clears a read mark.
--
-- KEYS[1]  the tenant's prefix (`ns:inbox:{t=acme}`, the tenant its hash tag). Keys: P:items
-- (hash id -> item JSON), P:order (every id by `at`), P:unread (unread ids by `at`), P:reads
-- (hash id -> read time).
local p = KEYS[1]
local id, item, at, read_at = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('HEXISTS', p .. ':items', id) == 1 then
  return 0
end
redis.call('ZADD', p .. ':order', at, id)
if read_at == '' then
  redis.call('ZADD', p .. ':unread', at, id)
else
  redis.call('HSET', p .. ':reads', id, read_at)
end
redis.call('HSET', p .. ':items', id, item)
return 1
