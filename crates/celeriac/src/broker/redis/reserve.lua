-- Atomically move up to ARGV[2] messages from the queue lists to `unacked`.
--
-- KEYS[1] unacked (hash), KEYS[2] unacked_index (zset), KEYS[3] delayed
-- (zset), KEYS[4..] the queue lists, highest priority first.
-- ARGV[1] now (unix seconds), ARGV[2] max, ARGV[3] tag prefix (unique to
-- this call), ARGV[4] separator, ARGV[4 + n] the tail that closes the
-- `unacked` entry of a message from list KEYS[3 + n]: `,"",<queue>]`.
--
-- Returns a flat array: the number of due delayed messages moved to their
-- lists, then for each list that gave messages its index (1-based into
-- KEYS[4..]), how many, and the messages. The k-th message returned (from
-- 1, across lists) is recorded under the tag ARGV[3] .. k.
--
-- Pop and record happen in one script, so a worker dying at any instant
-- leaves every message either in its list or in `unacked` (where kombu's or
-- our restore finds it). kombu's BRPOP-then-record leaves a gap here.
--
-- The script never reads inside a message: the tag comes from the caller
-- (any unique string serves; kombu restores by whatever tag `unacked_index`
-- names), and the entry routes the message back through the anonymous
-- exchange to the very queue it came from. Parsing envelopes in Lua cost
-- more than all the Redis commands here.

local now = ARGV[1]
local max = tonumber(ARGV[2])
local tag_prefix = ARGV[3]
local sep = ARGV[4]

-- 1. Due delayed messages join their lists (member = list .. sep .. payload).
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 500)
for _, member in ipairs(due) do
  local cut = string.find(member, sep, 1, true)
  if cut then
    redis.call('LPUSH', string.sub(member, 1, cut - 1), string.sub(member, cut + #sep))
  end
  redis.call('ZREM', KEYS[3], member)
end

-- 2. Reserve: pop in bulk (RPOP with a count), then record every message
-- with one HSET and one ZADD; per-message redis.call overhead is what
-- limits a script like this.
-- unpack() is bounded by Lua's C stack (8000 values): record in chunks.
local function record(command, key, args)
  for from = 1, #args, 2000 do
    redis.call(command, key, unpack(args, from, math.min(from + 1999, #args)))
  end
end

local out = {#due}
local taken = 0
local entries, index = {}, {}
for i = 4, #KEYS do
  if taken >= max then break end
  local items = redis.call('RPOP', KEYS[i], max - taken)
  if items then
    local tail = ARGV[i + 1]
    out[#out + 1] = i - 3
    out[#out + 1] = #items
    local o = #out
    for k, item in ipairs(items) do
      local tag = tag_prefix .. (taken + k)
      local at = 2 * (taken + k)
      entries[at - 1] = tag
      entries[at] = '[' .. item .. tail
      index[at - 1] = now
      index[at] = tag
      out[o + k] = item
    end
    taken = taken + #items
  end
end
record('HSET', KEYS[1], entries)
record('ZADD', KEYS[2], index)
return out
