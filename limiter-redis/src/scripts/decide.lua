-- limiter: one decision, all or nothing, in one script.
--
-- The Lua twin of limiter-core's algorithms (limiter-core/src/algorithm/*.rs), line for line.
-- Every value is an integer below 2^53, so doubles hold it exactly; divisions are floored
-- explicitly and ceiling divisions check their product (which stays below the dividend), so
-- no rounding ever differs from the Rust code.
--
-- KEYS[i]  the key of check i.
-- ARGV[1]  mode: "c" consume (check all, then apply all if admitted), "p" peek, "r" refund.
-- ARGV[2]  "s" to read the server's clock (TIME), or the time to use, in microseconds.
-- ARGV[3]  milliseconds added to every expiry: 0 with the server's clock; with a given time,
--          which may move slower than the server's clock, a margin so that no key goes early.
-- Then, per check: algorithm (1 gcra, 2 sliding window, 3 sliding log, 4 calendar), limit,
-- period (microseconds), cost, shadow (1 or 0), and for calendars four instants: the starts of
-- the previous, current and next local days and the end of the next one, as the client
-- computed them around its own idea of now (Lua knows no time zones).
--
-- Reply (consume, peek): {admitted, then per check: outcome (0 allowed, 1 denied,
-- 2 impossible), remaining, reset_after, retry_after}. Refund: 1.
--
-- Redis runs the whole script body on every call, so every function or table it defines costs
-- each call. GCRA, the common case, is therefore written inline in the main loop, and the
-- helpers of the other algorithms (and of refunds) are only defined when a call needs them.
--
-- State is stored as a string: a tag letter then decimal integers (G tat; W start previous
-- current; L entries...; C end used). Anything else reads as fresh. Each written key expires
-- when its state becomes indistinguishable from fresh (Limit::fresh_at), plus ARGV[3].

local floor, max, min = math.floor, math.max, math.min
local tonumber, format, concat = tonumber, string.format, table.concat
local byte, sub, match, gmatch = string.byte, string.sub, string.match, string.gmatch

local MAX_TIMESTAMP = 8936830510563328 -- 2^53 - 2^46, limiter_core::time::MAX_TIMESTAMP
local WEIGHT_STEPS = 65536
local ALLOWED, DENIED, IMPOSSIBLE = 0, 1, 2
local GCRA_TAG = 71 -- byte('G')

local mode = ARGV[1]
local now
if ARGV[2] == 's' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[2])
end
now = min(now, MAX_TIMESTAMP)
local grace = tonumber(ARGV[3]) or 0

-- Check i's arguments start at ARGV[offsets[i]]: algorithm (1 gcra, 2 sliding window,
-- 3 sliding log, 4 calendar), limit, period, cost, shadow, and bounds for calendars. All are
-- checked before any key is read or written.
local n = #KEYS
local offsets = {}
local refund = mode == 'r'
local windows, logs, calendars = refund, refund, refund
local a = 4
for i = 1, n do
  local alg = tonumber(ARGV[a])
  if (alg ~= 1 and alg ~= 2 and alg ~= 3 and alg ~= 4) or tonumber(ARGV[a + 1]) == nil
      or tonumber(ARGV[a + 2]) == nil or tonumber(ARGV[a + 3]) == nil then
    return redis.error_reply('LIMITER_BAD_ARGUMENTS check ' .. i .. ' of ' .. n)
  end
  offsets[i] = a
  if alg == 4 then
    a = a + 9
  else
    a = a + 5
  end
  if alg == 2 then
    windows = true
  elseif alg == 3 then
    logs = true
  elseif alg == 4 then
    calendars = true
  end
end
local others = windows or logs or calendars

-- Helpers of the algorithms other than GCRA, and of refunds --------------------------------

local ceil_div, sub0, gcra_refund, window_view, weighted, wait_for_weight, window_check, window_apply, window_refund, first_live, log_check, log_apply
local log_refund, day_end, calendar_view, calendar_check, calendar_apply, calendar_refund, fresh_at, load, encode, store, TAG, FRESH
local check_of

if others then
  ceil_div = function(a, b)
    local q = floor(a / b)
    if q * b < a then
      return q + 1
    end
    return q
  end

  sub0 = function(a, b)
    if a > b then
      return a - b
    end
    return 0
  end

  -- GCRA ---------------------------------------------------------------------------------------

  if refund then
    gcra_refund = function(c, st, now, amount)
      if st.tag ~= 'G' then
        return nil
      end
      local t = ceil_div(c.period, c.limit)
      local tat = st[1]
      return { tag = 'G', max(sub0(tat, amount * t), min(now, tat)) }
    end
  end

  -- Sliding-window counter ---------------------------------------------------------------------

  if windows then
    -- Returns start, elapsed, previous, current of the window holding now.
    window_view = function(period, st, now)
      local start = now - now % period
      if st.tag == 'W' then
        local s, previous, current = st[1], st[2], st[3]
        if s >= start then
          return s, sub0(now, s), previous, current
        elseif s + period == start then
          return start, now - start, current, 0
        end
      end
      return start, now - start, 0, 0
    end

    weighted = function(previous, period, elapsed)
      local unit = ceil_div(period, WEIGHT_STEPS)
      local steps = ceil_div(period, unit)
      local weight = ceil_div(sub0(period, elapsed), unit)
      return ceil_div(previous * weight, steps)
    end

    wait_for_weight = function(previous, budget, period, elapsed)
      if previous <= budget then
        return 0
      end
      local unit = ceil_div(period, WEIGHT_STEPS)
      local steps = ceil_div(period, unit)
      local max_weight = min(floor(budget * steps / previous), steps)
      return sub0(sub0(period, max_weight * unit), elapsed)
    end

    window_check = function(c, st, now, cost)
      local limit, period = c.limit, c.period
      local start, elapsed, previous, current = window_view(period, st, now)
      local used = weighted(previous, period, elapsed) + current
      local reset_after = 0
      if current > 0 then
        reset_after = sub0(start + 2 * period, now)
      elseif previous > 0 then
        reset_after = sub0(start + period, now)
      end
      local remaining_before = sub0(limit, used)
      if cost > limit then
        return IMPOSSIBLE, remaining_before, reset_after, 0
      end
      if used + cost <= limit then
        return ALLOWED, limit - used - cost, sub0(start + 2 * period, now), 0
      end
      local retry_after
      if current + cost <= limit then
        retry_after = wait_for_weight(previous, limit - cost - current, period, elapsed)
      else
        retry_after = sub0(start + period, now) + wait_for_weight(current, limit - cost, period, 0)
      end
      return DENIED, remaining_before, reset_after, max(retry_after, 1)
    end

    window_apply = function(c, st, now, cost)
      local start, _, previous, current = window_view(c.period, st, now)
      return { tag = 'W', start, previous, current + cost }
    end

    window_refund = function(c, st, now, amount)
      if st.tag ~= 'W' then
        return nil
      end
      local period = c.period
      local now_start = now - now % period
      local s = st[1]
      if s >= now_start or s + period == now_start then
        return { tag = 'W', s, st[2], sub0(st[3], amount) }
      end
      return nil
    end
  end

  -- Sliding log --------------------------------------------------------------------------------

  if logs then
    -- The index of the first entry still in the window (entries ascending), or #st + 1.
    first_live = function(st, period, now)
      local lo, hi = 1, #st + 1
      while lo < hi do
        local mid = floor((lo + hi) / 2)
        if st[mid] + period <= now then
          lo = mid + 1
        else
          hi = mid
        end
      end
      return lo
    end

    log_check = function(c, st, now, cost)
      local limit, period = c.limit, c.period
      local first, count, reset_after = 1, 0, 0
      if st.tag == 'L' then
        first = first_live(st, period, now)
        count = #st - first + 1
        if count > 0 then
          reset_after = sub0(st[#st] + period, now)
        end
      end
      local remaining_before = sub0(limit, count)
      if cost > limit then
        return IMPOSSIBLE, remaining_before, reset_after, 0
      end
      if count + cost <= limit then
        return ALLOWED, limit - count - cost, max(reset_after, period), 0
      end
      -- The oldest count + cost - limit live units must leave the window first.
      local retry_after = period
      local leaving = st.tag == 'L' and st[first + count + cost - limit - 1]
      if leaving then
        retry_after = sub0(leaving + period, now)
      end
      return DENIED, remaining_before, reset_after, max(retry_after, 1)
    end

    log_apply = function(c, st, now, cost)
      local entries = { tag = 'L' }
      local n = 0
      if st.tag == 'L' then
        for i = first_live(st, c.period, now), #st do
          n = n + 1
          entries[n] = st[i]
        end
      end
      local at = now
      if n > 0 then
        at = max(entries[n], now)
      end
      for _ = 1, cost do
        n = n + 1
        entries[n] = at
      end
      return entries
    end

    log_refund = function(c, st, now, amount)
      if st.tag ~= 'L' then
        return nil
      end
      local keep = sub0(#st, amount)
      local entries = { tag = 'L' }
      for i = 1, keep do
        entries[i] = st[i]
      end
      return entries
    end
  end

  -- Calendar window ----------------------------------------------------------------------------

  if calendars then
    -- The end of the local day holding now, from the client's bounds; nil when now is outside the
    -- three days the client sent (its clock is more than a day off the server's).
    day_end = function(b, now)
      for i = 1, 3 do
        if now >= b[i] and now < b[i + 1] then
          return b[i + 1]
        end
      end
      return nil
    end

    -- Returns used, end; nil when the day cannot be told.
    calendar_view = function(c, st, now)
      if st.tag == 'C' and now < st[1] then
        return st[2], st[1]
      end
      local e = day_end(c.bounds, now)
      if e == nil then
        return nil
      end
      return 0, e
    end

    calendar_check = function(c, st, now, cost)
      local limit = c.limit
      local used, e = calendar_view(c, st, now)
      if used == nil then
        return nil
      end
      local to_end = max(sub0(e, now), 1)
      local remaining_before = sub0(limit, used)
      local outcome
      if cost > limit then
        outcome = IMPOSSIBLE
      elseif used + cost <= limit then
        outcome = ALLOWED
      else
        outcome = DENIED
      end
      local remaining, reset_after, retry_after = remaining_before, 0, 0
      if outcome == ALLOWED then
        remaining = limit - used - cost
      end
      if used > 0 or outcome == ALLOWED then
        reset_after = to_end
      end
      if outcome == DENIED then
        retry_after = to_end
      end
      return outcome, remaining, reset_after, retry_after
    end

    calendar_apply = function(c, st, now, cost)
      local used, e = calendar_view(c, st, now)
      return { tag = 'C', e, used + cost }
    end

    calendar_refund = function(c, st, now, amount)
      if st.tag == 'C' and now < st[1] then
        return { tag = 'C', st[1], sub0(st[2], amount) }
      end
      return nil
    end
  end

  -- Storage ------------------------------------------------------------------------------------

  -- The tag of each algorithm's state, by algorithm number.
  TAG = { 'G', 'W', 'L', 'C' }

  -- Limit::fresh_at: when the state c's algorithm left becomes indistinguishable from fresh.
  fresh_at = function(c, st)
    local tag = st.tag
    if tag == 'G' then
      return st[1]
    elseif tag == 'W' then
      return st[1] + 2 * c.period
    elseif tag == 'L' then
      if #st > 0 then
        return st[#st] + c.period
      end
      return 0
    elseif tag == 'C' then
      return st[1]
    end
    return 0
  end

  FRESH = { tag = 'F' }

  -- Reads a key's state from its value (false when the key does not exist); state of another
  -- algorithm (a changed configuration) reads as fresh.
  load = function(raw, tag)
    if not raw or byte(raw, 1) ~= byte(tag) then
      return FRESH
    end
    if tag == 'G' then
      return { tag = 'G', tonumber(sub(raw, 2)) }
    elseif tag == 'L' then
      local st = { tag = 'L' }
      local n = 0
      for word in gmatch(raw, '%d+') do
        n = n + 1
        st[n] = tonumber(word)
      end
      return st
    elseif tag == 'W' then
      local s, previous, current = match(raw, '^W(%d+) (%d+) (%d+)$')
      if s then
        return { tag = 'W', tonumber(s), tonumber(previous), tonumber(current) }
      end
    else
      local e, used = match(raw, '^C(%d+) (%d+)$')
      if e then
        return { tag = 'C', tonumber(e), tonumber(used) }
      end
    end
    return FRESH
  end

  encode = function(st)
    local tag = st.tag
    if tag == 'G' then
      return format('G%.0f', st[1])
    elseif tag == 'W' then
      return format('W%.0f %.0f %.0f', st[1], st[2], st[3])
    elseif tag == 'C' then
      return format('C%.0f %.0f', st[1], st[2])
    end
    local words = { 'L' }
    for i = 1, #st do
      words[i + 1] = format('%.0f', st[i])
    end
    return concat(words, ' ')
  end

  store = function(key, c, st, now, grace)
    -- Rounded up to whole milliseconds: the key must not go before its state is fresh. A state
    -- that already is fresh goes at once, or after the grace (a given clock may go back).
    local ttl = max(ceil_div(sub0(fresh_at(c, st), now), 1000), 1) + grace
    redis.call('SET', key, encode(st), 'PX', format('%.0f', ttl))
  end

  -- One table per check: alg, tag, limit, period, cost, shadow, and bounds for calendars.
  check_of = function(a)
    local alg = tonumber(ARGV[a])
    local c = {
      alg = alg,
      tag = TAG[alg],
      limit = tonumber(ARGV[a + 1]),
      period = tonumber(ARGV[a + 2]),
      cost = tonumber(ARGV[a + 3]),
      shadow = ARGV[a + 4] == '1',
    }
    if alg == 4 then
      c.bounds = { tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7]), tonumber(ARGV[a + 8]) }
    end
    return c
  end
end

-- Main ---------------------------------------------------------------------------------------

if mode == 'r' then
  for i = 1, n do
    local c = check_of(offsets[i])
    local st, alg = load(redis.call('GET', KEYS[i]), c.tag), c.alg
    if alg == 1 then
      st = gcra_refund(c, st, now, c.cost)
    elseif alg == 2 then
      st = window_refund(c, st, now, c.cost)
    elseif alg == 3 then
      st = log_refund(c, st, now, c.cost)
    else
      st = calendar_refund(c, st, now, c.cost)
    end
    if st then
      store(KEYS[i], c, st, now, grace)
    end
  end
  return 1
end

-- reply: {admitted, then four values per check}. pending[i]: what an admitted consume writes
-- for check i, if it was allowed: GCRA's new TAT, or the state the other algorithms apply to.
local reply = { 1 }
local pending = {}
local admitted = true
for i = 1, n do
  local a = offsets[i]
  local outcome, remaining, reset_after, retry_after
  local shadow
  local raw = redis.call('GET', KEYS[i])
  if tonumber(ARGV[a]) == 1 then
    -- GCRA (limiter-core/src/algorithm/gcra.rs), inline.
    local limit, period, cost = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    shadow = ARGV[a + 4] == '1'
    local tat = now
    if raw and byte(raw, 1) == GCRA_TAG then
      tat = max(tonumber(sub(raw, 2)), now)
    end
    local t = floor(period / limit)
    if t * limit < period then
      t = t + 1
    end
    local capacity = limit * t
    local backlog = tat - now
    local remaining_before = 0
    if capacity > backlog then
      remaining_before = floor((capacity - backlog) / t)
    end
    if cost > limit then
      outcome, remaining, reset_after, retry_after = IMPOSSIBLE, remaining_before, backlog, 0
    else
      local after = backlog + cost * t
      if after <= capacity then
        outcome, remaining, reset_after, retry_after = ALLOWED, floor((capacity - after) / t), after, 0
        pending[i] = tat + cost * t
      else
        outcome, remaining, reset_after, retry_after = DENIED, remaining_before, backlog, after - capacity
      end
    end
  else
    local c = check_of(a)
    shadow = c.shadow
    local st, alg = load(raw, c.tag), c.alg
    if alg == 2 then
      outcome, remaining, reset_after, retry_after = window_check(c, st, now, c.cost)
    elseif alg == 3 then
      outcome, remaining, reset_after, retry_after = log_check(c, st, now, c.cost)
    else
      outcome, remaining, reset_after, retry_after = calendar_check(c, st, now, c.cost)
    end
    if outcome == nil then
      return redis.error_reply(format(
        'LIMITER_CLOCK_SKEW server time %.0f is outside the local days [%.0f, %.0f) the client sent for %s',
        now, c.bounds[1], c.bounds[4], KEYS[i]))
    end
    if outcome == ALLOWED then
      pending[i] = st
    end
  end
  admitted = admitted and (shadow or outcome == ALLOWED)
  local base = 4 * i - 2
  reply[base], reply[base + 1], reply[base + 2], reply[base + 3] = outcome, remaining, reset_after, retry_after
end

if not admitted then
  reply[1] = 0
elseif mode == 'c' then
  for i = 1, n do
    local st = pending[i]
    if st then
      local a = offsets[i]
      local alg = tonumber(ARGV[a])
      if alg == 1 then
        -- Limit::fresh_at of GCRA is its TAT; rounded up to whole milliseconds as in store.
        local ttl = 0
        if st > now then
          local wait = st - now
          ttl = floor(wait / 1000)
          if ttl * 1000 < wait then
            ttl = ttl + 1
          end
        end
        ttl = max(ttl, 1) + grace
        redis.call('SET', KEYS[i], format('G%.0f', st), 'PX', format('%.0f', ttl))
      else
        local c = check_of(a)
        if alg == 2 then
          st = window_apply(c, st, now, c.cost)
        elseif alg == 3 then
          st = log_apply(c, st, now, c.cost)
        else
          st = calendar_apply(c, st, now, c.cost)
        end
        store(KEYS[i], c, st, now, grace)
      end
    end
  end
end
return reply
