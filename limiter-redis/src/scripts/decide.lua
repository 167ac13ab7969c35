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
-- store's throughput: so numbers arrive packed in binary (struct.unpack: no decimal parsing),
-- states are stored in limiter-core's own encoding (State::encode: a tag byte, then
-- little-endian u64s), and every redis.call counts (they are most of the time spent).
--
-- One key per subject: all the limits of one subject (a tenant's sustained, burst and daily
-- limits) live in one value, a sequence of records '<I2c0I8I4c0': the field (the escaped
-- policy name), the instant its state goes fresh (Limit::fresh_at), and the state. A decision
-- reads every subject in one MGET and writes each subject it changes once, to expire when its
-- latest record goes fresh. Records of limits the call does not check are kept as they are,
-- until they go fresh (plus the margin).
--
-- KEYS[k]  the key of subject k.
-- ARGV[1]  every number of the call, packed in one string (one argument converts cheaper than
--          many): a header '<BBI8I8I2': mode (1 consume, 2 peek, 3 refund, 4 reset, 5 give
--          back), clock (1
--          the server's TIME, 0 the given time), the given time in microseconds, milliseconds
--          added to every expiry (0 with the server's clock; with a given time, which may move
--          slower than the server's, a margin so that no key goes early), the number of checks;
--          then per check '<I2BBI8I8I8I8I8I8I2c0': the index of its subject in KEYS, algorithm
--          (1 GCRA, 2 sliding window, 3 sliding log, 4 calendar; 0 for a reset), shadow (1 or
--          0), cost, limit, four numbers the client derived, and its field. The derived
--          numbers: GCRA: emission interval, capacity (limit x interval); sliding window:
--          period, weight unit, weight steps; sliding log: period; calendar: the starts of the
--          previous, current and next local days around the client's estimate of the time and
--          the end of the next one (Lua knows no time zones). If the time is in none of them,
--          the script writes nothing and answers LIMITER_CLOCK_SKEW with the time: the client
--          then places the days around it and calls again. A refund's are the period (GCRA:
--          the interval; calendar: the end of the charged day) and the time of the charge. A
--          reset removes each check's record. A give back is a refund of a charge this script
--          made, each check followed by '<I8I4c0I4c0': the fresh_at of the state before the
--          charge, the state the charge wrote, and the state before it (empty: none); where the
--          record still holds what the charge wrote (no one charged since), the state before
--          is put back as it was; elsewhere the charge is refunded.
--
-- Reply: one binary string, '<BI8' admitted (1 or 0; always 0 for a peek or a refund, which
-- decide nothing) and the time used, then for each subject '<I4' the length of its value
-- before the call (after it, for a refund) (0 when absent) and the value: the client finds
-- each check's state in it. A string, not a table: Redis converts a table reply field by
-- field, at several times the cost.

local unpack_bin, pack_bin = struct.unpack, struct.pack
local floor, byte = math.floor, string.byte

local MAX_TIMESTAMP = 8936830510563328 -- 2^53 - 2^46, limiter_core::time::MAX_TIMESTAMP
local CHECK = '<I2BBI8I8I8I8I8I8I2c0'
local RECORD = '<I2c0I8I4c0'

local args = ARGV[1]
local nkeys = #KEYS
local ok, mode, clock, now, grace, n = pcall(unpack_bin, '<BBI8I8I2', args)
if #ARGV ~= 1 or not ok or mode < 1 or mode > 5 then
  return redis.error_reply('LIMITER_BAD_ARGUMENTS expected one argument holding a header')
end
-- The checks are read as they are decided, from `pos`: no table per check.
local pos = 21
-- Fails unless the checks took the whole argument: before anything is written.
local function bad_arguments()
  if pos ~= #args + 1 then
    return redis.error_reply('LIMITER_BAD_ARGUMENTS ' .. (#args + 1 - pos)
      .. ' bytes left over after ' .. n .. ' checks')
  end
end
local function bad_subject(k)
  return redis.error_reply('LIMITER_BAD_ARGUMENTS a check names subject ' .. k .. ' of '
    .. nkeys)
end
if clock == 1 then
  local t = redis.call('TIME')
  now = t[1] * 1000000 + t[2]
end
if now > MAX_TIMESTAMP then
  now = MAX_TIMESTAMP
end
-- A record is dropped once its state is fresh and the margin has passed, as a key expires.
-- A reset, which knows no time, drops none (and keeps the key's expiry).
local keep_after = now - grace * 1000
if mode == 4 then
  keep_after = -1
end

-- When a state written at `now` goes fresh: in whole milliseconds, rounded up (at least 1).
local function ttl(latest)
  local t = 1
  if latest > now then
    local wait = latest - now
    t = floor(wait / 1000)
    if t * 1000 < wait then
      t = t + 1
    end
  end
  return t + grace
end

-- Charges `cost` to `raw` (a state, or nil), the core's `check` and `apply`: the state left
-- and when it goes fresh, or nothing if the cost does not fit; (nil, nil, true) if the time is
-- in none of a calendar's local days.
local function charge(alg, cost, limit, a, b, c, d, raw)
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
      local after_cost = tat + cost * a
      if after_cost - now <= b then
        value, f = pack_bin('<BI8', 1, after_cost), after_cost
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
      if size and size % 8 == 1 and byte(raw, 1) == 3 then
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
          return nil, nil, true
        end
      end
      if used + cost <= limit then
        value, f = pack_bin('<BI8I8', 4, e, used + cost), e
      end
    end
  end
  return value, f
end

-- The error of a calendar check whose local days [a, d) do not hold the time.
local function skew(a, d, k)
  return redis.error_reply(string.format(
    'LIMITER_CLOCK_SKEW server time %.0f is outside the local days [%.0f, %.0f) the client sent for %s',
    now, a, d, KEYS[k]))
end

-- One limit of one subject whose value holds that limit alone (or nothing): charged without
-- the tables of the general path below, which any other case takes.
local raws
if mode == 1 and n == 1 and nkeys == 1 then
  local k, alg, shadow, cost, limit, a, b, c, d, field, after = unpack_bin(CHECK, args, pos)
  local raw = redis.call('GET', KEYS[1])
  local alone, state = k == 1 and after == #args + 1, nil
  if alone and raw then
    local ok_record, f0, _, st0, next0 = pcall(unpack_bin, RECORD, raw, 1)
    local tag, len = ok_record and byte(st0, 1), ok_record and #st0
    -- Anything else (another record, a corrupt value) takes the general path.
    alone = ok_record and f0 == field and next0 == #raw + 1
      and ((tag == 1 and len == 9) or (tag == 2 and len == 25)
        or (tag == 3 and len % 8 == 1) or (tag == 4 and len == 17))
    state = st0
  end
  if alone then
    local value, f, skewed = charge(alg, cost, limit, a, b, c, d, state)
    if skewed then
      return skew(a, d, 1)
    end
    local admitted = 1
    if value then
      redis.call('PSETEX', KEYS[1], ttl(f), pack_bin(RECORD, #field, field, f, #value, value))
    elseif shadow == 0 then
      admitted = 0
    end
    if raw then
      return pack_bin('<BI8I4', admitted, now, #raw) .. raw
    end
    return pack_bin('<BI8', admitted, now) .. '\0\0\0\0'
  end
  raws = { raw }
end

-- One read for every subject.
if raws then
  -- Read above.
elseif nkeys == 1 then
  raws = { redis.call('GET', KEYS[1]) }
else
  raws = redis.call('MGET', unpack(KEYS))
end

-- Each subject's records: states[k][field], fresh[k][field], and the fields in their order.
-- A value that is no sequence of records, or a record holding no state of any algorithm
-- (State::decode would refuse it), is corrupt: read as fresh it would hand its subject a
-- whole budget. The call fails instead, naming the key and when the value expires (its TTL is
-- when its states would have been fresh); a state of another algorithm is not corrupt: it
-- reads as fresh, as a change of algorithm does.
local states, fresh, order = {}, {}, {}
-- The subject being parsed, to name it when its value is corrupt.
local parsing = 0
local function parse()
  for k = 1, nkeys do
    parsing = k
    local s, f, o = {}, {}, {}
    local raw = raws[k]
    if raw then
      local at, size = 1, #raw
      while at <= size do
        local field, fresh_at, state, after = unpack_bin(RECORD, raw, at)
        local tag, len = byte(state, 1), #state
        if not ((tag == 1 and len == 9) or (tag == 2 and len == 25)
            or (tag == 3 and len % 8 == 1) or (tag == 4 and len == 17)) then
          error('no state')
        end
        s[field], f[field], o[#o + 1] = state, fresh_at, field
        at = after
      end
    end
    states[k], fresh[k], order[k] = s, f, o
  end
end
-- One protected call for all subjects: a failed unpack (a value cut short) raises an error.
if not pcall(parse) then
  return redis.error_reply('LIMITER_CORRUPT_STATE ' .. KEYS[parsing] .. ' expires in '
    .. redis.call('PTTL', KEYS[parsing]) .. ' ms')
end

-- What the call writes: written[k][field] = { state, fresh_at }, or false to remove.
local written = {}
local function write(k, field, value)
  local w = written[k]
  if not w then
    w = {}
    written[k] = w
  end
  w[field] = value
end

-- Writes each changed subject once: its kept records and the new ones, to expire when the
-- latest goes fresh (rounded up to whole milliseconds, at least 1), plus the margin. The
-- values written, by subject (false: deleted), for the reply of a refund.
local final = {}
local function flush()
  for k, w in pairs(written) do
    local out, latest, count = {}, 0, 0
    local s, f = states[k], fresh[k]
    local o = order[k]
    -- The subject's records in their order, then the new ones.
    local nold = #o
    for field, new in pairs(w) do
      if s[field] == nil then
        nold = nold + 1
        o[nold] = field
      end
    end
    for j = 1, nold do
      local field = o[j]
      local state, fresh_at
      local new = w[field]
      if new then
        state, fresh_at = new[1], new[2]
      elseif new == nil then
        state, fresh_at = s[field], f[field]
      end
      if state and fresh_at > keep_after then
        count = count + 1
        out[count] = pack_bin(RECORD, #field, field, fresh_at, #state, state)
        if fresh_at > latest then
          latest = fresh_at
        end
      end
    end
    if count == 0 then
      redis.call('DEL', KEYS[k])
      final[k] = false
    else
      local value = table.concat(out)
      final[k] = value
      if mode == 4 then
        -- What is left goes fresh no later than the whole did.
        redis.call('SET', KEYS[k], value, 'KEEPTTL')
      else
        redis.call('PSETEX', KEYS[k], ttl(latest), value)
      end
    end
  end
end

-- Reset -----------------------------------------------------------------------------------------

if mode == 4 then
  for _ = 1, n do
    local k, _, _, _, _, _, _, _, _, field, after = unpack_bin(CHECK, args, pos)
    pos = after
    if not states[k] then
      return bad_subject(k)
    end
    write(k, field, false)
  end
  local bad = bad_arguments()
  if bad then
    return bad
  end
  flush()
  return 1
end


-- Refund ----------------------------------------------------------------------------------------

if mode == 3 or mode == 5 then
  for _ = 1, n do
    -- a: GCRA's interval, the window's or the log's period, or the end of the charged local
    -- day; b: the time of the charge. Each branch is its core twin's `refund`.
    local k, alg, _, amount, _, a, b, _, _, field, after = unpack_bin(CHECK, args, pos)
    pos = after
    local previous_fresh, charged, previous
    if mode == 5 then
      previous_fresh, charged, previous, pos = unpack_bin('<I8I4c0I4c0', args, pos)
    end
    local st = states[k]
    if not st then
      return bad_subject(k)
    end
    local raw = st[field]
    local tag, size = raw and byte(raw, 1), raw and #raw
    local value, f
    if mode == 5 and raw == charged then
      -- Untouched since the charge: exactly as it was before it.
      value, f = previous, previous_fresh
      if value == '' then
        value = false
      end
    elseif alg == 1 and tag == 1 and size == 9 then
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
        value, f = pack_bin('<BI8', 1, back), back
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
      f = s + 2 * a
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
        f = 0
        if left > 0 then
          f = unpack_bin('<I8', value, 2 + 8 * (left - 1)) + a
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
        value, f = pack_bin('<BI8I8', 4, e, used), e
      end
    end
    if value then
      write(k, field, { value, f })
    elseif value == false then
      write(k, field, false)
    end
  end
  local bad = bad_arguments()
  if bad then
    return bad
  end
  flush()
end

-- Consume (and peek, which decides nothing) ----------------------------------------------------

local admitted = 0
if mode == 1 then
  admitted = 1
  -- What the call writes if it is admitted, four entries per check that allows: subject,
  -- field, state, fresh instant (a shadow check that denies writes nothing).
  local new, count = {}, 0
  for _ = 1, n do
    local k, alg, shadow, cost, limit, a, b, c, d, field, after = unpack_bin(CHECK, args, pos)
    pos = after
    local st = states[k]
    if not st then
      return bad_subject(k)
    end
    local value, f, skewed = charge(alg, cost, limit, a, b, c, d, st[field])
    if skewed then
      return skew(a, d, k)
    end
    if value then
      new[count + 1], new[count + 2], new[count + 3], new[count + 4] = k, field, value, f
      count = count + 4
    elseif shadow == 0 then
      -- An enforced limit denies: nothing is written, and the rest need not be decided.
      admitted = 0
      break
    end
  end
  if admitted == 1 then
    local bad = bad_arguments()
    if bad then
      return bad
    end
    for j = 1, count, 4 do
      write(new[j], new[j + 1], { new[j + 2], new[j + 3] })
    end
    flush()
  end
end

-- The reply: the verdict, the time, and each subject's value as it was before the call (after
-- a refund).
local out = { pack_bin('<BI8', admitted, now) }
for k = 1, nkeys do
  local raw = raws[k]
  if mode ~= 1 and final[k] ~= nil then
    raw = final[k]
  end
  if raw then
    out[k + 1] = pack_bin('<I4', #raw) .. raw
  else
    out[k + 1] = '\0\0\0\0'
  end
end
return table.concat(out)
