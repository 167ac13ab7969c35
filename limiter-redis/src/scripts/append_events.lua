-- Appends a batch of events atomically: the raw events to a capped stream, and the per-day
-- aggregates that survive its trimming.
--
-- KEYS[1]  the log's prefix, hash tag included (`{limiter-events}`): every key starts with it.
-- ARGV[1]  the stream's approximate cap (MAXLEN ~).
-- ARGV[2..] 17 values per event: kind, at, tenant, user, key_id, policy, limit, remaining,
--          retry_after, window_start, period, method, route, network, reason, day, peak_used.
--          An optional value is '' when absent and its text behind a '=' when present; day is
--          the local day's start of `at` (computed by the client, which knows the time zone);
--          peak_used is '' unless the event counts towards a daily quota's peak.
--
-- Keys: P:events (stream), P:days (zset of days with aggregates), P:hits:<day> (zset tenant ->
-- denials), P:peak:<day> (hash tenant US policy -> "used:limit"), P:ex:<subject> (zset of
-- exhausted windows), P:restored (hash subject -> last restored window).
local p = KEYS[1]
local stride = 17
local names = {'k', 'at', 't', 'u', 'key', 'p', 'l', 'r', 'ra', 'w', 'pe', 'm', 'ro', 'n', 're'}
local function opt(v)
  if v == '' then return nil end
  return string.sub(v, 2)
end
local kept = 0
for b = 2, #ARGV - stride + 1, stride do
  local kind = ARGV[b]
  local tenant = opt(ARGV[b + 2])
  local policy = opt(ARGV[b + 5])
  local window = ARGV[b + 9]
  local subject = (tenant or '') .. '\31' .. (policy or '')
  local keep = true
  if kind == 'restored' then
    local ex = redis.call('ZREVRANGEBYSCORE', p .. ':ex:' .. subject, '(' .. window, '-inf', 'LIMIT', 0, 1)
    if #ex == 0 then
      keep = false
    else
      local restored = redis.call('HGET', p .. ':restored', subject)
      if restored and tonumber(restored) > tonumber(ex[1]) then
        keep = false
      elseif (not restored) or tonumber(restored) < tonumber(window) then
        redis.call('HSET', p .. ':restored', subject, window)
      end
    end
  elseif kind == 'exhausted' then
    redis.call('ZADD', p .. ':ex:' .. subject, window, window)
  end
  if keep then
    kept = kept + 1
    local fields = {}
    for i = 1, 15 do
      local v = ARGV[b + i - 1]
      local optional = (i == 3 or i == 4 or i == 5 or i == 6 or i >= 12)
      if optional then v = opt(v) end
      if v then
        fields[#fields + 1] = names[i]
        fields[#fields + 1] = v
      end
    end
    redis.call('XADD', p .. ':events', 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
    if tenant then
      local day = ARGV[b + 15]
      redis.call('ZADD', p .. ':days', day, day)
      if kind == 'denied' then
        redis.call('ZINCRBY', p .. ':hits:' .. day, 1, tenant)
      else
        -- A member for every tenant seen that day, so that the day's keys exist.
        redis.call('ZINCRBY', p .. ':hits:' .. day, 0, tenant)
      end
      local used = ARGV[b + 16]
      if used ~= '' then
        local field = tenant .. '\31' .. (policy or '')
        local current = redis.call('HGET', p .. ':peak:' .. day, field)
        if (not current) or tonumber(used) >= tonumber(string.match(current, '^(%d+)')) then
          redis.call('HSET', p .. ':peak:' .. day, field, used .. ':' .. ARGV[b + 6])
        end
      end
    end
  end
end
return kept
