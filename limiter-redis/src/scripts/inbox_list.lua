-- Up to ARGV[2] of a tenant's items, newest first (ties by id descending), only the unread
-- ones if ARGV[1] is '1': each item's JSON and its read time (nil if unread), flat.
--
-- KEYS[1]  the tenant's prefix (layout in inbox_put.lua).
local p = KEYS[1]
local set = ':order'
if ARGV[1] == '1' then
  set = ':unread'
end
local ids = redis.call('ZREVRANGE', p .. set, 0, tonumber(ARGV[2]) - 1)
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = redis.call('HGET', p .. ':items', id)
  out[#out + 1] = redis.call('HGET', p .. ':reads', id)
end
return out
