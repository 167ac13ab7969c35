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
-- store's throughput. Besides its commands, what costs is calls into C (each struct.unpack or
-- struct.pack costs about as much as 15 bytecodes, plus a little per value: a double less
-- than an 8-byte integer), allocation (every table, closure and new string is garbage the
-- collector visits) and bytecodes. So a charge (modes 1 and 2) reads each check with one
-- unpack and each record, state included, with another, where it lies in the value; writes
-- each record with one pack; and creates no table but the one holding the values to write,
-- and no closure but `decide`, which takes everything as arguments (a closure over locals
-- would allocate each of them). A lone GCRA limit takes a shorter path still. Refunds and
-- resets, rare, take a general path with tables.
--
-- One key per subject: all the limits of one subject (a tenant's sustained, burst and daily
-- limits) live in one value, a sequence of records '<I2c0I8I4c0': the field (the escaped
-- policy name), the instant its state goes fresh (Limit::fresh_at), and the state, in
-- limiter-core's own encoding (State::encode: a tag byte, then little-endian u64s). A
-- decision reads every subject in one MGET (GET for one) and writes each subject it changes
-- once, to expire when its latest record goes fresh: PSETEX, or on the server's clock SET
-- KEEPTTL where no record goes fresh later than one the value held (the key already lives
-- that long). A charge writes the records of the limits it checks first, in the order the
-- client sent them, then the others: so the next decision with the same limits finds each
-- record where it looks first. Records of limits the call does not check are kept as they
-- are, until they go fresh (plus the margin).
--
-- A call decides one batch, as below, or several consumes in turn (see "Several decisions").
--
-- KEYS[k]  the key of subject k.
-- ARGV[1]  every number of the call, packed in one string (one argument converts cheaper than
--          many), every number a little-endian double (exact: each is an integer below
--          2^53): a header '<Bddd': the mode plus 8 for the server's clock (modes: 1 consume,
--          2 peek, 3 refund, 4 reset, 5 give back; without the 8, the given time), the given
--          time in microseconds, milliseconds added to every expiry (0 with the server's
--          clock; with a given time, which may move slower than the server's, a margin so that
--          no key goes early), the number of checks. Then the checks, the checks of each
--          subject in a row, subjects in KEYS' order, each '<BI2c0' then its numbers: a flag
--          byte (the algorithm, 1 GCRA, 2 sliding window, 3 sliding log, 4 calendar, 0 for a
--          reset; plus 8 for a shadow check; plus 16 for the last check of its subject), the
--          field, then:
--          - consume and peek, six numbers (unused ones 0), read in one unpack whatever the
--            algorithm: the cost, then GCRA: emission interval, capacity (limit x interval);
--            sliding window: limit, period, weight unit, weight steps; sliding log: limit,
--            period; calendar: limit, then the starts of the previous, current and next local
--            days around the client's estimate of the time and the end of the next one (Lua
--            knows no time zones). If the time is in none of them, the script writes nothing
--            and answers LIMITER_CLOCK_SKEW with the time: the client then places the days
--            around it and calls again.
--          - refund and give back, three: the amount, the period (GCRA: the interval;
--            calendar: the end of the charged day) and the time of the charge; a give back's
--            check is followed by '<dI4c0I4c0': the fresh_at of the state before the charge,
--            the state the charge wrote, and the state before it (empty: none). Where the
--            record still holds what the charge wrote (no one charged since), the state
--            before is put back as it was; elsewhere the charge is refunded.
--          - reset, none: it removes each check's record.
--
-- Reply: one binary string, '<BI8' admitted (1 or 0; always 0 for a peek or a refund, which
-- decide nothing) and the time used, then for each subject '<I4' the length of its value
-- before the call (after it, for a refund) (0 when absent) and the value: the client finds
-- each check's state in it. A string, not a table: Redis converts a table reply field by
-- field, at several times the cost.

-- Globals read once: each read of a global is a lookup in the script's environment.
local unpack_bin, pack_bin = struct.unpack, struct.pack
local floor, sub = math.floor, string.sub
local call = redis.call
local KEYS, ARGV = KEYS, ARGV

local MAX_TIMESTAMP = 8936830510563328 -- 2^53 - 2^46, limiter_core::time::MAX_TIMESTAMP

local args = ARGV[1]
local nkeys = #KEYS
-- Several consumes in one call (see "Several decisions" below): more than one argument.
local several = #ARGV > 1
local flags, now, grace, n, pos, mode, keep_after, raws
if several then
  if #args < 3 or #args ~= 1 + 2 * (#ARGV - 1) or unpack_bin('<B', args) ~= 6 then
    return redis.error_reply('LIMITER_BAD_ARGUMENTS expected a header of several consumes')
  end
elseif #ARGV ~= 1 or #args < 25 or nkeys < 1 then
  return redis.error_reply('LIMITER_BAD_ARGUMENTS expected one argument holding a header')
else
  flags, now, grace, n, pos = unpack_bin('<Bddd', args)
  mode = flags % 8
  if mode < 1 or mode > 5 or flags >= 16 then
    return redis.error_reply('LIMITER_BAD_ARGUMENTS unknown mode ' .. flags)
  end
  if flags >= 8 then
    local t = redis.call('TIME')
    now = t[1] * 1000000 + t[2]
  end
  if now > MAX_TIMESTAMP then
    now = MAX_TIMESTAMP
  end
  -- A record is dropped once its state is fresh and the margin has passed, as a key expires.
  -- A reset, which knows no time, drops none (and keeps the key's expiry).
  keep_after = now - grace * 1000
  if mode == 4 then
    keep_after = -1
  end
end

-- One read for every subject.
if several then
  -- Read below.
elseif mode == 1 and n == 1 and nkeys == 1 then
  -- One GCRA limit of a subject whose value holds that limit alone (or nothing): charged here,
  -- without the general path's function, tables and loops. Anything else (another algorithm,
  -- another record, a corrupt value) takes the general path.
  local raw = call('GET', KEYS[1])
  local fl, field, cost, interval, capacity, _, _, _, after =
    unpack_bin('<BI2c0dddddd', args, pos)
  local tat, was, alone = now, 0, false
  if fl % 8 ~= 1 or fl < 16 or after ~= #args + 1 then
    -- Not a lone GCRA check.
  elseif not raw then
    alone = true
  elseif #raw == 23 + #field then
    -- The size of this check's record with a GCRA state: one unpack reads all of it (in a
    -- protected call: a record of another field could claim more bytes than there are).
    local read, f, fresh, len, tag, stored = pcall(unpack_bin, '<I2c0I8I4BI8', raw)
    if read and f == field and len == 9 and tag == 1 then
      alone, was = true, fresh
      if stored > now then
        tat = stored
      end
    end
  end
  if alone then
    -- gcra (as below): allowed while the backlog after the cost stays within the capacity.
    local admitted = 1
    local after_cost = tat + cost * interval
    if after_cost - now > capacity then
      if fl % 16 < 8 then
        admitted = 0
      end
    elseif after_cost <= keep_after then
      -- Fresh at once (a cost of 0): the record goes, as a fresh one does below.
      call('DEL', KEYS[1])
    elseif grace == 0 and after_cost <= was then
      call('SET', KEYS[1], pack_bin('<I2c0I8I4BI8', #field, field, after_cost, 9, 1,
        after_cost), 'KEEPTTL')
    else
      local wait = after_cost - now
      local ttl = floor(wait / 1000)
      if ttl * 1000 < wait then
        ttl = ttl + 1
      end
      if ttl < 1 then
        ttl = 1
      end
      call('PSETEX', KEYS[1], string.format('%d', ttl + grace),
        pack_bin('<I2c0I8I4BI8', #field, field, after_cost, 9, 1, after_cost))
    end
    raw = raw or ''
    return pack_bin('<BI8I4c0', admitted, now, #raw, raw)
  end
  raws = { raw }
elseif nkeys == 1 then
  raws = { call('GET', KEYS[1]) }
else
  raws = call('MGET', unpack(KEYS))
end

-- Charge and peek ------------------------------------------------------------------------------

-- Decides a consume (mode 1) or validates the values for a peek (mode 2), over the checks at
-- `pos` in `args`, writing nothing. Returns the verdict (1 or 0; for an admitted consume, with
-- what to write), or 'skew' and the day bounds and subject of a calendar check whose days do
-- not hold the time, or 'corrupt' and a subject, or 'bad' and a message.
--
-- Unless `careful`, a record is read with its state in one unpack, as the check's algorithm
-- lays it out; where the record holds a shorter state (of another algorithm) at the end of the
-- value, that unpack runs past the end and raises: the caller then calls again, careful (it
-- may, as nothing was written).
--
-- A function of its arguments only: the one closure a charge creates.
local function decide(mode, args, pos, raws, nkeys, now, keep_after, careful)
  -- A record's head, then its state's tag: the state is the tag and what follows.
  local HEAD = '<I2c0I8I4B'
  local admitted = mode == 1
  -- What to write if admitted: per subject, its new value ('' to delete; 0, or nothing past
  -- the third subject, for none), when its latest record goes fresh, and when the latest
  -- record it held went fresh.
  local writes = { 0, 0, 0, 0, 0, 0, 0, 0, 0 }
  for k = 1, nkeys do
    local raw = raws[k] or ''
    local size = #raw
    -- The next record, while the records are those of this subject's checks in order.
    local cursor, in_order = 1, true
    local index
    local first = pos
    -- The subject's new value, when its latest record goes fresh, and whether a charge
    -- changed it (else it is not written); when the latest record read goes fresh.
    local value, latest, changed, was = '', 0, false, 0
    local fl
    repeat
      local field, cost, x1, x2, x3, x4, x5, next_check
      fl, field, cost, x1, x2, x3, x4, x5, next_check = unpack_bin('<BI2c0dddddd', args, pos)
      pos = next_check
      local alg = fl % 8
      if alg < 1 or alg > 4 then
        return 'bad', 'a check of algorithm ' .. alg
      end
      -- The check's record: where it starts, when it goes fresh, its state's tag, where the
      -- rest of the state starts, and the state's size; and, if `fused`, its state's numbers
      -- as the check's algorithm lays them out (which they are if the tag is its own).
      local start, kept_until, tag, at, len
      local fused, s1, s2, s3 = false, 0, 0, 0
      if in_order and cursor <= size then
        local f, fr, l, t
        if careful or alg == 3 then
          f, fr, l, t = unpack_bin(HEAD, raw, cursor)
        elseif alg == 1 then
          f, fr, l, t, s1 = unpack_bin('<I2c0I8I4BI8', raw, cursor)
          fused = true
        elseif alg == 2 then
          f, fr, l, t, s1, s2, s3 = unpack_bin('<I2c0I8I4BI8I8I8', raw, cursor)
          fused = true
        else
          f, fr, l, t, s1, s2 = unpack_bin('<I2c0I8I4BI8I8', raw, cursor)
          fused = true
        end
        if f == field then
          if fr > was then
            was = fr
          end
          start, kept_until, tag, len = cursor, fr, t, l
          at = cursor + 15 + #field
          cursor = at + l - 1
        else
          in_order, fused = false, false
        end
      end
      if not in_order then
        -- Where each record starts, by field: read once per subject, and each record checked.
        if not index then
          index = {}
          local from = 1
          while from <= size do
            local f, fr, l, t, after = unpack_bin(HEAD, raw, from)
            if after + l - 1 > size + 1 or not ((t == 1 and l == 9) or (t == 2 and l == 25)
                or (t == 3 and l % 8 == 1) or (t == 4 and l == 17)) then
              return 'corrupt', k
            end
            if fr > was then
              was = fr
            end
            if not index[f] then
              index[f] = from
            end
            from = after + l - 1
          end
        end
        local from = index[field]
        if from then
          local _, fr, l, t, after = unpack_bin(HEAD, raw, from)
          start, kept_until, tag, at, len = from, fr, t, after, l
        end
      elseif tag and (at + len - 1 > size + 1 or not ((tag == 1 and len == 9)
          or (tag == 2 and len == 25) or (tag == 3 and len % 8 == 1)
          or (tag == 4 and len == 17))) then
        return 'corrupt', k
      end
      -- Charges `cost`: the core's `check` and `apply`. A state of another algorithm reads as
      -- fresh. `record` is the record the charge leaves, if the cost fits.
      local record, fresh_at
      if not admitted then
        -- A peek, or a consume already denied: the values need only be read.
      elseif alg == 1 then
        -- gcra: x1 = emission interval, x2 = capacity. Allowed while the backlog after the
        -- cost stays within the capacity; the TAT moves on by cost x interval.
        local tat = now
        if tag == 1 then
          if not fused then
            s1 = unpack_bin('<I8', raw, at)
          end
          if s1 > now then
            tat = s1
          end
        end
        local after_cost = tat + cost * x1
        if after_cost - now <= x2 then
          fresh_at = after_cost
          record = pack_bin('<I2c0I8I4BI8', #field, field, after_cost, 9, 1, after_cost)
        end
      elseif alg == 2 then
        -- sliding_window: x1 = limit, x2 = period, x3 = weight unit, x4 = weight steps. The
        -- previous window counts in proportion (in whole steps, rounded up) to how much of
        -- it the sliding window still covers. The current window starts at the multiple of
        -- the period below now.
        local start_now = now - now % x2
        local s, previous, current = start_now, 0, 0
        if tag == 2 then
          if not fused then
            s1, s2, s3 = unpack_bin('<I8I8I8', raw, at)
          end
          if s1 >= start_now then
            s, previous, current = s1, s2, s3
          elseif s1 + x2 == start_now then
            previous = s3
          end
        end
        local used = current
        if previous > 0 then
          local elapsed = now - s
          if elapsed < 0 then
            elapsed = 0
          end
          local rest = x2 - elapsed
          local weight = floor(rest / x3)
          if weight * x3 < rest then
            weight = weight + 1
          end
          local x = previous * weight
          local share = floor(x / x4)
          if share * x4 < x then
            share = share + 1
          end
          used = used + share
        end
        if used + cost <= x1 then
          fresh_at = s + 2 * x2
          record = pack_bin('<I2c0I8I4BI8I8I8', #field, field, fresh_at, 25, 2, s, previous,
            current + cost)
        end
      elseif alg == 3 then
        -- sliding_log: x1 = limit, x2 = period. Entries are 8-byte words after the tag,
        -- ascending; the live ones are those still inside the window.
        local total, first_live = 0, 1
        if tag == 3 then
          total = (len - 1) / 8
          local lo, hi = 1, total + 1
          while lo < hi do
            local mid = floor((lo + hi) / 2)
            if unpack_bin('<I8', raw, at + 8 * (mid - 1)) + x2 <= now then
              lo = mid + 1
            else
              hi = mid
            end
          end
          first_live = lo
        end
        local count = total - first_live + 1
        if count + cost <= x1 then
          -- New entries go at the end, at the last live entry if the clock went back.
          local stamp, kept = now, ''
          if count > 0 then
            kept = sub(raw, at + 8 * (first_live - 1), at + len - 2)
            local newest = unpack_bin('<I8', raw, at + len - 9)
            if newest > now then
              stamp = newest
            end
          end
          local state = '\3' .. kept .. string.rep(pack_bin('<I8', stamp), cost)
          fresh_at = stamp + x2
          record = pack_bin('<I2c0I8I4c0', #field, field, fresh_at, #state, state)
        end
      else
        -- calendar: x1 = limit; x2, x3, x4, x5 = the client's local-day bounds. The stored
        -- day holds while now is before its end; otherwise the day holding now starts from
        -- zero.
        local used, day_end = 0, nil
        if tag == 4 then
          if not fused then
            s1, s2 = unpack_bin('<I8I8', raw, at)
          end
          if now < s1 then
            used, day_end = s2, s1
          end
        end
        if not day_end then
          if now >= x2 and now < x3 then
            day_end = x3
          elseif now >= x3 and now < x4 then
            day_end = x4
          elseif now >= x4 and now < x5 then
            day_end = x5
          else
            return 'skew', x2, x5, k
          end
        end
        if used + cost <= x1 then
          fresh_at = day_end
          record = pack_bin('<I2c0I8I4BI8I8', #field, field, day_end, 17, 4, day_end,
            used + cost)
        end
      end
      if not admitted then
        -- Nothing to write.
      elseif record then
        changed = true
        if fresh_at > keep_after then
          if value == '' then
            value = record
          else
            value = value .. record
          end
          if fresh_at > latest then
            latest = fresh_at
          end
        end
      elseif fl % 16 >= 8 then
        -- A shadow check that denies writes nothing and denies nothing: its record stays.
        if tag and kept_until > keep_after then
          value = value .. sub(raw, start, at + len - 2)
          if kept_until > latest then
            latest = kept_until
          end
        end
      else
        -- An enforced limit denies: nothing is written; the rest is only read.
        admitted = false
      end
    until fl >= 16
    -- Records this call did not check: read (so that a corrupt one is found) and, if still
    -- live, kept after the checked ones, in runs as they lie in the value.
    if not in_order or cursor ~= size + 1 then
      -- The fields of this subject's checks, whose records are written above.
      local checked_fields, p = {}, first
      while p < pos do
        local g, after_field = unpack_bin('<xI2c0', args, p)
        checked_fields[g] = true
        p = after_field + 8 * 6
      end
      local from, run = 1, nil
      while from <= size do
        local f, fresh, l, t, after = unpack_bin(HEAD, raw, from)
        local next_record = after + l - 1
        if next_record > size + 1 or not ((t == 1 and l == 9) or (t == 2 and l == 25)
            or (t == 3 and l % 8 == 1) or (t == 4 and l == 17)) then
          return 'corrupt', k
        end
        if fresh > was then
          was = fresh
        end
        if not checked_fields[f] and fresh > keep_after then
          run = run or from
          if fresh > latest then
            latest = fresh
          end
        elseif run then
          value = value .. sub(raw, run, from - 1)
          run = nil
        end
        from = next_record
      end
      if run then
        value = value .. sub(raw, run, size)
      end
    end
    if changed then
      writes[3 * k - 2], writes[3 * k - 1], writes[3 * k] = value, latest, was
    end
  end
  if pos ~= #args + 1 then
    return 'bad', (#args + 1 - pos) .. ' bytes left over after the checks of ' .. nkeys
      .. ' subjects'
  end
  if not admitted then
    return 0
  end
  return 1, writes
end

-- Milliseconds from `now` until `latest`, rounded up, at least 1: the TTL of a key whose latest
-- record goes fresh at `latest`.
local function ttl_of(latest, now)
  local ttl = 1
  if latest > now then
    local wait = latest - now
    ttl = floor(wait / 1000)
    if ttl * 1000 < wait then
      ttl = ttl + 1
    end
  end
  return ttl
end

-- Writes what an admitted charge changed (`writes`, from `decide`) of the subjects
-- KEYS[first + 1 .. first + count]: each subject once, its new value, to expire when its
-- latest record goes fresh (rounded up to whole milliseconds, at least 1), plus the margin.
-- The TTL goes as a string: Redis formats a number argument with %.17g, at several times the
-- cost. On the server's clock, a key already lives until its latest record goes fresh (every
-- write sees to it): where no record goes fresh later than that, the key keeps its TTL (SET
-- KEEPTTL costs less than PSETEX). With a given time, each write renews the margin instead.
local function write(writes, first, count, now, grace, read)
  for k = 1, count do
    local key = KEYS[first + k]
    local value, latest = writes[3 * k - 2], writes[3 * k - 1]
    if value == '' then
      call('DEL', key)
    elseif not value or value == 0 then
      -- Not changed.
    elseif grace == 0 and latest <= writes[3 * k] then
      local old = read[k]
      if old and #old == #value then
        -- The same size (the same records, moved on): overwritten in place, which keeps the
        -- TTL and answers a number, where SET answers a status Lua receives as a table.
        call('SETRANGE', key, '0', value)
      else
        call('SET', key, value, 'KEEPTTL')
      end
    else
      call('PSETEX', key, string.format('%d', ttl_of(latest, now) + grace), value)
    end
  end
end

-- Several decisions ----------------------------------------------------------------------------
--
-- A client with more consumes waiting than calls in flight sends them together, each decided
-- in turn exactly as a lone call would decide it (atomic, as is the whole call), the fixed
-- cost of a call (the round trip, EVALSHA's own work, TIME) shared. ARGV[1] is '<B' 6, then
-- for each consume '<I2' the number of its subjects; ARGV[1 + j] is the argument of the jth,
-- as it would be alone (a consume, mode 1); its subjects are the next KEYS in order. A key of
-- several of them is read once, and each one after the first reads what the one before wrote.
-- Reply: for each consume, '<BI8' its verdict and the time used, then, as for a lone call,
-- each subject's value before it; or, for a consume this call did not decide (a corrupt
-- value, a calendar's days around another time: nothing written), '<BI8' 2 and the time, for
-- the client to send it alone, whose reply says why.
if several then
  local count = #ARGV - 1
  -- The number of subjects of each consume, read in one unpack.
  local subjects_of = { unpack_bin('<' .. string.rep('I2', count), args, 2) }
  local total = 0
  for j = 1, count do
    total = total + subjects_of[j]
  end
  if total ~= nkeys then
    return redis.error_reply('LIMITER_BAD_ARGUMENTS ' .. count .. ' consumes of ' .. total
      .. ' subjects in all, with ' .. nkeys .. ' keys')
  end
  local values = call('MGET', unpack(KEYS))
  -- Each key's value as the consumes so far left it (false: none).
  local current = {}
  for i = 1, nkeys do
    local key = KEYS[i]
    if current[key] == nil then
      current[key] = values[i] or false
    end
  end
  local server_now
  local out = {}
  -- What each consume reads, in turn (one table for all: `decide` reads no further than the
  -- consume's subjects).
  local read = {}
  local first = 0
  for j = 1, count do
    local a = ARGV[j + 1]
    local subjects = subjects_of[j]
    local part
    local fl, t, gr, _, p = 0, 0, 0, 0, 0
    if #a >= 25 then
      fl, t, gr, _, p = unpack_bin('<Bddd', a)
    end
    if fl == 1 or fl == 9 then
      if fl == 9 then
        if not server_now then
          local tm = call('TIME')
          server_now = tm[1] * 1000000 + tm[2]
        end
        t = server_now
      end
      if t > MAX_TIMESTAMP then
        t = MAX_TIMESTAMP
      end
      for k = 1, subjects do
        read[k] = current[KEYS[first + k]]
      end
      local keep = t - gr * 1000
      local done, verdict, writes = pcall(decide, 1, a, p, read, subjects, t, keep, false)
      if not done then
        done, verdict, writes = pcall(decide, 1, a, p, read, subjects, t, keep, true)
      end
      if done and (verdict == 0 or verdict == 1) then
        -- The reply part, in one pack where the consume has up to three subjects.
        local v1, v2, v3 = read[1] or '', read[2] or '', read[3] or ''
        if subjects == 1 then
          part = pack_bin('<BI8I4c0', verdict, t, #v1, v1)
        elseif subjects == 2 then
          part = pack_bin('<BI8I4c0I4c0', verdict, t, #v1, v1, #v2, v2)
        elseif subjects == 3 then
          part = pack_bin('<BI8I4c0I4c0I4c0', verdict, t, #v1, v1, #v2, v2, #v3, v3)
        else
          part = pack_bin('<BI8', verdict, t)
          for k = 1, subjects do
            local v = read[k] or ''
            part = part .. pack_bin('<I4c0', #v, v)
          end
        end
        if verdict == 1 then
          write(writes, first, subjects, t, gr, read)
          for k = 1, subjects do
            local value = writes[3 * k - 2]
            if value == '' then
              current[KEYS[first + k]] = false
            elseif value and value ~= 0 then
              current[KEYS[first + k]] = value
            end
          end
        end
      end
    end
    out[j] = part or pack_bin('<BI8', 2, t)
    first = first + subjects
  end
  return table.concat(out)
end

local done, verdict, x, y, z
if mode <= 2 then
  done, verdict, x, y, z = pcall(decide, mode, args, pos, raws, nkeys, now, keep_after, false)
  if not done then
    -- A value cut short, a record shorter than its check's algorithm reads, or arguments:
    -- decided again with each state read apart from its record's head, which fails only on a
    -- corrupt value or on arguments (said below).
    done, verdict, x, y, z = pcall(decide, mode, args, pos, raws, nkeys, now, keep_after, true)
  end
  if done and verdict == 1 then
    write(x, 0, nkeys, now, grace, raws)
  end
  if done and nkeys <= 3 and (verdict == 1 or verdict == 0) then
    -- The reply, with no table.
    local v1, v2, v3 = raws[1] or '', raws[2] or '', raws[3] or ''
    if nkeys == 1 then
      return pack_bin('<BI8I4c0', verdict, now, #v1, v1)
    elseif nkeys == 2 then
      return pack_bin('<BI8I4c0I4c0', verdict, now, #v1, v1, #v2, v2)
    end
    return pack_bin('<BI8I4c0I4c0I4c0', verdict, now, #v1, v1, #v2, v2, #v3, v3)
  end
end

-- The reply: the verdict, the time, and each subject's value (`values[k]`, or nothing).
local function reply(admitted, values)
  local v1, v2, v3 = values[1] or '', values[2] or '', values[3] or ''
  if nkeys == 1 then
    return pack_bin('<BI8I4c0', admitted, now, #v1, v1)
  elseif nkeys == 2 then
    return pack_bin('<BI8I4c0I4c0', admitted, now, #v1, v1, #v2, v2)
  elseif nkeys == 3 then
    return pack_bin('<BI8I4c0I4c0I4c0', admitted, now, #v1, v1, #v2, v2, #v3, v3)
  end
  local out = { pack_bin('<BI8', admitted, now) }
  for k = 1, nkeys do
    local v = values[k] or ''
    out[k + 1] = pack_bin('<I4c0', #v, v)
  end
  return table.concat(out)
end

-- Whether `state` (its tag byte and size) is a state of some algorithm: anything else is
-- corrupt, and read as fresh it would hand its subject a whole budget.
local function is_state(tag, size)
  return (tag == 1 and size == 9) or (tag == 2 and size == 25)
    or (tag == 3 and size % 8 == 1) or (tag == 4 and size == 17)
end

-- The error for a subject whose value is no sequence of records of states: the call fails,
-- naming the key and when the value expires (its TTL is when its states would have been
-- fresh). A state of another algorithm is no corruption: it reads as fresh, as a change of
-- algorithm does.
local function corrupt(k)
  return redis.error_reply('LIMITER_CORRUPT_STATE ' .. KEYS[k] .. ' expires in '
    .. redis.call('PTTL', KEYS[k]) .. ' ms')
end

-- The first subject whose value is not a sequence of records holding states, if any.
local function first_corrupt()
  for k = 1, nkeys do
    local raw = raws[k] or ''
    local at, size = 1, #raw
    while at <= size do
      local read, field, fresh_at, len, tag, after = pcall(unpack_bin, '<I2c0I8I4B', raw, at)
      if not read or after + len - 1 > size + 1 or not is_state(tag, len) then
        return k
      end
      at = after + len - 1
    end
  end
end

local function bad_arguments(message)
  return redis.error_reply('LIMITER_BAD_ARGUMENTS ' .. message)
end

if mode <= 2 then
  if done then
    if verdict == 'skew' then
      return redis.error_reply(string.format(
        'LIMITER_CLOCK_SKEW server time %.0f is outside the local days [%.0f, %.0f) the client sent for %s',
        now, x, y, KEYS[z]))
    elseif verdict == 'corrupt' then
      return corrupt(x)
    elseif verdict == 'bad' then
      return bad_arguments(x)
    end
    return reply(verdict, raws)
  end
  local k = first_corrupt()
  if k then
    return corrupt(k)
  end
  return bad_arguments(tostring(verdict))
end

-- Refund, give back and reset: the general path -----------------------------------------------

local floor, byte = math.floor, string.byte

-- Each subject's records: states[k][field], fresh[k][field], and the fields in their order.
local states, fresh, order = {}, {}, {}
do
  local k = first_corrupt()
  if k then
    return corrupt(k)
  end
  for k = 1, nkeys do
    local s, f, o = {}, {}, {}
    local raw = raws[k]
    if raw then
      local at, size = 1, #raw
      while at <= size do
        local field, fresh_at, state, after = unpack_bin('<I2c0I8I4c0', raw, at)
        s[field], f[field], o[#o + 1] = state, fresh_at, field
        at = after
      end
    end
    states[k], fresh[k], order[k] = s, f, o
  end
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

-- The checks, each with its subject.
local k = 1
for _ = 1, n do
  if k > nkeys then
    return bad_arguments('more subjects than checks')
  end
  local fl, field, amount, a, at
  if mode == 4 then
    fl, field, pos = unpack_bin('<BI2c0', args, pos)
  else
    -- a: GCRA's interval, the window's or the log's period, or the end of the charged local
    -- day; at: the time of the charge. Each branch is its core twin's `refund`.
    fl, field, amount, a, at, pos = unpack_bin('<BI2c0ddd', args, pos)
  end
  local alg = fl % 8
  local raw = states[k][field]
  local tag, size = raw and byte(raw, 1), raw and #raw
  local value, f
  if mode == 4 then
    value = false
  elseif mode == 5 then
    local previous_fresh, charged, previous
    previous_fresh, charged, previous, pos = unpack_bin('<dI4c0I4c0', args, pos)
    if raw == charged then
      -- Untouched since the charge: exactly as it was before it.
      value, f = previous, previous_fresh
      if value == '' then
        value = false
      end
    end
  end
  if value ~= nil then
    -- Decided above.
  elseif alg == 1 and tag == 1 and size == 9 then
    -- gcra::refund: back by what is certainly still queued of the charge.
    local _, tat = unpack_bin('<BI8', raw)
    local charged = amount * a
    local owed = at + charged - now
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
    local charged_in = at - at % a
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
    -- sliding_log::refund: drop up to `amount` entries stamped `at`, the newest first.
    local count = (size - 1) / 8
    local hi = count
    while hi > 0 and unpack_bin('<I8', raw, 2 + 8 * (hi - 1)) > at do
      hi = hi - 1
    end
    local lo = hi
    while lo > 0 and hi - lo < amount and unpack_bin('<I8', raw, 2 + 8 * (lo - 1)) == at do
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
  if fl >= 16 then
    k = k + 1
  end
end
if k ~= nkeys + 1 or pos ~= #args + 1 then
  return bad_arguments((#args + 1 - pos) .. ' bytes left over after ' .. n .. ' checks of '
    .. (k - 1) .. ' subjects')
end

-- Writes each changed subject once: its kept records and the new ones, to expire when the
-- latest goes fresh (rounded up to whole milliseconds, at least 1), plus the margin. The
-- values written, by subject (false: deleted), for the reply of a refund.
local final = {}
for k, w in pairs(written) do
  local out, latest, count = {}, 0, 0
  local s, f = states[k], fresh[k]
  local o = order[k]
  -- The subject's records in their order, then the new ones.
  local nold = #o
  for field in pairs(w) do
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
      out[count] = pack_bin('<I2c0I8I4c0', #field, field, fresh_at, #state, state)
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
      redis.call('PSETEX', KEYS[k], ttl_of(latest, now) + grace, value)
    end
  end
end
if mode == 4 then
  return 1
end
-- A refund decides nothing: the values after it.
for k = 1, nkeys do
  if final[k] == nil then
    final[k] = raws[k]
  end
end
return reply(0, final)
