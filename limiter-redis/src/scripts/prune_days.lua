-- Removes the aggregates of days that started before ARGV[1]; returns how many days.
-- KEYS[1]: the log's prefix, hash tag included.
local p = KEYS[1]
local days = redis.call('ZRANGEBYSCORE', p .. ':days', '-inf', '(' .. ARGV[1])
for _, day in ipairs(days) do
  redis.call('DEL', p .. ':hits:' .. day, p .. ':peak:' .. day)
  redis.call('ZREM', p .. ':days', day)
end
return #days
