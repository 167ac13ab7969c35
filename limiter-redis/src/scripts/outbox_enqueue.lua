-- Adds the notices whose id the outbox does not hold yet, as pending; returns how many.
--
-- KEYS[1]  the outbox's prefix, hash tag included (`{ns:notify}`): every key starts with it.
-- ARGV     4 values per notice: its id, its JSON, its due time (the pending set's score), and
--          how it meets a notice of the same id that the outbox holds:
--          'k' (keep)     leaves that one as it is: what `Outbox::enqueue` promises;
--          'x' (exact)    written by the decision that crossed the threshold, with the numbers
--                         of the crossing: replaces a proposal that no worker has claimed yet;
--          'p' (proposal) re-proposed from a later decision's statuses, with that decision's
--                         numbers (see notices.rs): leaves that one as it is.
--
-- Keys (P the prefix): P:n:<id> a hash per notice (notice, state, attempt, due, exact,
-- lease_until, worker, settled_at, error); P:pending by due; P:claimed by lease end;
-- P:reclaim (leases that ended) by due; P:delivered and P:failed by settled_at.
local p = KEYS[1]
local added = 0
for i = 1, #ARGV - 3, 4 do
  local id, notice, due, how = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local key = p .. ':n:' .. id
  if redis.call('EXISTS', key) == 0 then
    -- The set first: should it fail (a key of another type), nothing of the notice is
    -- written, and a later proposal writes it whole.
    redis.call('ZADD', p .. ':pending', due, id)
    local exact = '1'
    if how == 'p' then exact = '0' end
    redis.call('HSET', key, 'notice', notice, 'state', 'pending', 'attempt', '0', 'due', due,
      'exact', exact)
    added = added + 1
  elseif how == 'x' then
    local held = redis.call('HMGET', key, 'state', 'attempt', 'exact')
    if held[1] == 'pending' and held[2] == '0' and held[3] == '0' then
      redis.call('ZADD', p .. ':pending', due, id)
      redis.call('HSET', key, 'notice', notice, 'due', due, 'exact', '1')
    end
  end
end
return added
