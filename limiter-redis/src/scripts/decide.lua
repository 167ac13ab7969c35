-- limiter: one decision, all or nothing, in one script.
--
-- The script decides and writes; the client computes what it reports (remaining, reset,
-- retry) with limiter-core itself, from the states the script read and the time it used. So
-- the script holds only the part of each core algorithm (limiter-core/src/algorithm/*.rs)
-- that decides whether a cost fits and what state it leaves: `check`'s verdict, `apply`,
-- `refund` and `fresh_at`. Every value is an integer below 2^53, so doubles hold it exactly;
-- every division is followed by a check of its product, so no rounding differs from Rust's.
-- `now % a` (Lua: now - floor(now / a) * a) is exact as well: below 2^53, now / a is never
-- within half a unit in the last place of the next integer, so it cannot round up to it.
--
-- Redis runs the whole script body on every call, and the server's time per call is the
-- store's throughput: so the body defines one small function and few tables, numbers arrive
-- packed in binary (struct.unpack: no decimal parsing), and states are stored in
-- limiter-core's own encoding (State::encode: a tag byte, then little-endian u64s).
--
-- KEYS[i]  the key of check i.
-- ARGV[1]  every number of the call, packed in one string (one argument converts cheaper than
--          many): a header '<BBI8I8', mode (1 consume, 2 peek, 3 refund), clock (1 the server's
--          TIME, 0 the given time), the given time in microseconds, milliseconds added to
--          every expiry (0 with the server's clock; with a given time, which may move slower
--          than the server's, a margin so that no key goes early); then per check
--          '<BBI8I8I8I8I8I8': algorithm (1 GCRA, 2 sliding window, 3 sliding log, 4 calendar),
--          shadow (1 or 0), cost, limit, then four numbers the client derived: GCRA: emission
--          interval, capacity (limit x interval); sliding window: period, weight unit, weight
--          steps; sliding log: period; calendar: the starts of the previous, current and next
--          local days around the client's estimate of the time and the end of the next one
--          (Lua knows no time zones). If the time is in none of them, the script writes nothing
--          and answers LIMITER_CLOCK_SKEW with the time: the client then places the days around
--          it and calls again.
--
-- Reply: one binary string, '<BI8' admitted (1 or 0; always 0 for a peek or a refund, which
-- decide nothing) and the time used, then for each key '<I4' the length of its value before
-- the call (after it, for a refund) (0 when absent) and the value. A string, not a table:
-- Redis converts a table reply field by field, at several times the cost.
--
-- Each written key expires when its state becomes indistinguishable from fresh
-- (Limit::fresh_at, rounded up to whole milliseconds, at least 1), plus the margin.

local unpack_bin, pack_bin = struct.unpack, struct.pack
local floor = math.floor

local MAX_TIMESTAMP = 8936830510563328 -- 2^53 - 2^46, limiter_core::time::MAX_TIMESTAMP
local CHECK = '<BBI8I8I8I8I8I8'
local ABSENT = '\0\0\0\0' -- '<I4' 0: the length of an absent value

local n = #KEYS
local args = ARGV[1]
if #ARGV ~= 1 or #args ~= 18 + 50 * n then
  return redis.error_reply('LIMITER_BAD_ARGUMENTS expected one argument of ' .. (18 + 50 * n)
    .. ' bytes for ' .. n .. ' keys')
end
-- A single check is unpacked with the header, in the same call.
local mode, clock, now, grace, alg1, shadow1, cost1, limit1, a1, b1, c1, d1
if n == 1 then
  mode, clock, now, grace, alg1, shadow1, cost1, limit1, a1, b1, c1, d1 =
    unpack_bin('<BBI8I8BBI8I8I8I8I8I8', args)
else
  mode, clock, now, grace = unpack_bin('<BBI8I8', args)
end
if mode ~= 1 and mode ~= 2 and mode ~= 3 then
  return redis.error_reply('LIMITER_BAD_ARGUMENTS unknown mode ' .. mode)
end
if clock == 1 then
  local t = redis.call('TIME')
  now = t[1] * 1000000 + t[2]
end
if now > MAX_TIMESTAMP then
  now = MAX_TIMESTAMP
end

-- One read for every key. For a single key, no table: the common case pays for none.
local single, raws
if n == 1 then
  single = redis.call('GET', KEYS[1])
else
  raws = redis.call('MGET', unpack(KEYS))
end

-- A value that is no state of any algorithm (State::decode would refuse it) is corrupt: read as
-- fresh it would hand its key a whole budget. The call fails instead, naming the key and when
-- the value expires (its TTL is when the state would have been fresh); a state of another
-- algorithm is not corrupt: it reads as fresh, as a change of algorithm does.
for i = 1, n do
  local raw = single
  if raws then
    raw = raws[i]
  end
  if raw then
    local tag, size = string.byte(raw, 1), #raw
    if not ((tag == 1 and size == 9) or (tag == 2 and size == 25)
        or (tag == 3 and size % 8 == 1) or (tag == 4 and size == 17)) then
      return redis.error_reply('LIMITER_CORRUPT_STATE ' .. KEYS[i] .. ' expires in '
        .. redis.call('PTTL', KEYS[i]) .. ' ms')
    end
  end
end

-- Writes a key's new state, to expire when it goes fresh (at once if it already is).
local function store(key, value, fresh)
  local ttl = 1
  if fresh > now then
    local wait = fresh - now
    ttl = floor(wait / 1000)
    if ttl * 1000 < wait then
      ttl = ttl + 1
    end
  end
  redis.call('SET', key, value, 'PX', ttl + grace)
end

-- Refund ----------------------------------------------------------------------------------------

if mode == 3 then
  for i = 1, n do
    -- a: GCRA's interval, the window's or the log's period, or the end of the charged local
    -- day; b: the time of the charge. Each branch is its core twin's `refund`.
    local alg, _, amount, _, a, b = unpack_bin(CHECK, args, 19 + 50 * (i - 1))
    local raw = single
    if raws then
      raw = raws[i]
    end
    local tag, size = raw and string.byte(raw, 1), raw and #raw
    local value, fresh
    if alg == 1 and tag == 1 and size == 9 then
      -- gcra::refund: back by what is certainly still queued of the charge.
      local _, tat = unpack_bin('<BI8', raw)
      local charged = amount * a
      local owed = b + charged - now
      if owed > charged then
        owed = charged
      end
      if owed > 0 then
        local back = tat - owed
        if back < 0 then
          back = 0
        end
        value, fresh = pack_bin('<BI8', 1, back), back
      end
    elseif alg == 2 and tag == 2 and size == 25 then
      -- sliding_window::refund: into the window the charge was made in, if still kept.
      local _, s, previous, current = unpack_bin('<BI8I8I8', raw)
      local charged_in = b - b % a
      if charged_in == s then
        current = current - amount
        if current < 0 then
          current = 0
        end
        value = pack_bin('<BI8I8I8', 2, s, previous, current)
      elseif charged_in + a == s then
        previous = previous - amount
        if previous < 0 then
          previous = 0
        end
        value = pack_bin('<BI8I8I8', 2, s, previous, current)
      end
      fresh = s + 2 * a
    elseif alg == 3 and tag == 3 and size % 8 == 1 then
      -- sliding_log::refund: drop up to `amount` entries stamped `b`, the newest first.
      local count = (size - 1) / 8
      local hi = count
      while hi > 0 and unpack_bin('<I8', raw, 2 + 8 * (hi - 1)) > b do
        hi = hi - 1
      end
      local lo = hi
      while lo > 0 and hi - lo < amount and unpack_bin('<I8', raw, 2 + 8 * (lo - 1)) == b do
        lo = lo - 1
      end
      if lo < hi then
        value = string.sub(raw, 1, 1 + 8 * lo) .. string.sub(raw, 2 + 8 * hi)
        local left = count - (hi - lo)
        fresh = 0
        if left > 0 then
          fresh = unpack_bin('<I8', value, 2 + 8 * (left - 1)) + a
        end
      end
    elseif alg == 4 and tag == 4 and size == 17 then
      -- calendar::refund: only to the day charged.
      local _, e, used = unpack_bin('<BI8I8', raw)
      if e == a then
        used = used - amount
        if used < 0 then
          used = 0
        end
        value, fresh = pack_bin('<BI8I8', 4, e, used), e
      end
    end
    if value then
      -- A state that is already fresh goes at once (after the margin).
      store(KEYS[i], value, fresh)
      -- The reply carries the states as the refund left them.
      if raws then
        raws[i] = value
      else
        single = value
      end
    end
  end
end

-- Consume (and peek, which decides nothing) ----------------------------------------------------

local admitted = 0
if mode == 1 then
  admitted = 1
  -- values[i], fresh[i]: what the call writes for check i if it is admitted, and when that
  -- goes fresh; nil where the check does not allow (a shadow check that denies writes nothing).
  -- A single check is written at once: it alone decides.
  local values, fresh
  if n > 1 then
    values, fresh = {}, {}
  end
  for i = 1, n do
    local alg, shadow, cost, limit, a, b, c, d = alg1, shadow1, cost1, limit1, a1, b1, c1, d1
    local raw = single
    if raws then
      alg, shadow, cost, limit, a, b, c, d = unpack_bin(CHECK, args, 19 + 50 * (i - 1))
      raw = raws[i]
    end
    -- Each algorithm reads the tag with its state, once the size says it may be its own.
    local size = raw and #raw
    local value, f
    -- A cost above the limit never fits (Outcome::Impossible).
    if cost <= limit then
      if alg == 1 then
        -- gcra: a = emission interval, b = capacity. Allowed while the backlog after the cost
        -- stays within the capacity; the TAT moves on by cost x interval.
        local tat = now
        if size == 9 then
          local tag, stored = unpack_bin('<BI8', raw)
          if tag == 1 and stored > now then
            tat = stored
          end
        end
        local after = tat + cost * a
        if after - now <= b then
          value, f = pack_bin('<BI8', 1, after), after
        end
      elseif alg == 2 then
        -- sliding_window: a = period, b = weight unit, c = weight steps. The previous window
        -- counts in proportion (in whole steps, rounded up) to how much of it the sliding
        -- window still covers. The current window starts at the multiple of a below now.
        local start = now - now % a
        local s, previous, current = start, 0, 0
        if size == 25 then
          local tag, ss, pp, cc = unpack_bin('<BI8I8I8', raw)
          if tag ~= 2 then
            -- Another algorithm's state: fresh.
          elseif ss >= start then
            s, previous, current = ss, pp, cc
          elseif ss + a == start then
            previous = cc
          end
        end
        local used = current
        if previous > 0 then
          local elapsed = now - s
          if elapsed < 0 then
            elapsed = 0
          end
          local rest = a - elapsed
          local weight = floor(rest / b)
          if weight * b < rest then
            weight = weight + 1
          end
          local x = previous * weight
          local share = floor(x / c)
          if share * c < x then
            share = share + 1
          end
          used = used + share
        end
        if used + cost <= limit then
          value, f = pack_bin('<BI8I8I8', 2, s, previous, current + cost), s + 2 * a
        end
      elseif alg == 3 then
        -- sliding_log: a = period. Entries are 8-byte words from byte 2, ascending; the live
        -- ones are those still inside the window.
        local total, first = 0, 1
        if size and size % 8 == 1 and string.byte(raw, 1) == 3 then
          total = (size - 1) / 8
          local lo, hi = 1, total + 1
          while lo < hi do
            local mid = floor((lo + hi) / 2)
            if unpack_bin('<I8', raw, 2 + 8 * (mid - 1)) + a <= now then
              lo = mid + 1
            else
              hi = mid
            end
          end
          first = lo
        end
        local count = total - first + 1
        if count + cost <= limit then
          -- New entries go at the end, at the last live entry if the clock went back.
          local at, kept = now, ''
          if count > 0 then
            kept = string.sub(raw, 2 + 8 * (first - 1))
            local last = unpack_bin('<I8', raw, size - 7)
            if last > now then
              at = last
            end
          end
          value, f = '\3' .. kept .. string.rep(pack_bin('<I8', at), cost), at + a
        end
      else
        -- calendar: a, b, c, d = the client's local-day bounds. The stored day holds while now
        -- is before its end; otherwise the day holding now starts from zero.
        local used, e = 0, nil
        if size == 17 then
          local tag, stored_end, stored_used = unpack_bin('<BI8I8', raw)
          if tag == 4 and now < stored_end then
            used, e = stored_used, stored_end
          end
        end
        if not e then
          if now >= a and now < b then
            e = b
          elseif now >= b and now < c then
            e = c
          elseif now >= c and now < d then
            e = d
          else
            return redis.error_reply(string.format(
              'LIMITER_CLOCK_SKEW server time %.0f is outside the local days [%.0f, %.0f) the client sent for %s',
              now, a, d, KEYS[i]))
          end
        end
        if used + cost <= limit then
          value, f = pack_bin('<BI8I8', 4, e, used + cost), e
        end
      end
    end
    if value then
      if n == 1 then
        store(KEYS[1], value, f)
      else
        values[i], fresh[i] = value, f
      end
    elseif shadow == 0 then
      -- An enforced limit denies: nothing is written, and the rest need not be decided.
      admitted = 0
      break
    end
  end
  if admitted == 1 and n > 1 then
    for i = 1, n do
      local value = values[i]
      if value then
        store(KEYS[i], value, fresh[i])
      end
    end
  end
end

-- The reply: the verdict, the time, and each value as it was before the call (after a refund).
if n == 1 then
  if single then
    return pack_bin('<BI8I4', admitted, now, #single) .. single
  end
  return pack_bin('<BI8', admitted, now) .. ABSENT
end
local out = { pack_bin('<BI8', admitted, now) }
for i = 1, n do
  local raw = raws[i]
  if raw then
    out[2 * i] = pack_bin('<I4', #raw)
    out[2 * i + 1] = raw
  else
    out[2 * i] = ABSENT
    out[2 * i + 1] = ''
  end
end
return table.concat(out)
