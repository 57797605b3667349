-- Atomically move up to ARGV[2] messages from the queue lists to `unacked`.
--
-- KEYS[1] unacked (hash), KEYS[2] unacked_index (zset), KEYS[3] delayed
-- (zset), KEYS[4] this consumer's held set, KEYS[5..] the queue lists,
-- highest priority first.
-- ARGV[1] now (unix seconds), ARGV[2] max, ARGV[3] key prefix,
-- ARGV[4] separator.
--
-- Returns a flat array: tag, payload, list-index (1-based into KEYS[5..]),
-- redelivered (0/1), repeated; and as the last element the number of due
-- delayed messages moved to their lists.
--
-- Pop and record happen in one script, so a worker dying at any instant
-- leaves every message either in its list or in `unacked` (where kombu's or
-- our restore finds it). kombu's BRPOP-then-record leaves a gap here.

local now = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local prefix = ARGV[3]
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

-- 2. Reserve.
local out = {}
local taken = 0
for i = 5, #KEYS do
  while taken < max do
    local item = redis.call('RPOP', KEYS[i])
    if not item then break end
    -- Read the tag, exchange and routing key with plain string matching,
    -- starting at "properties": a JSON decode of every envelope would cost
    -- several times more than all the Redis commands here together. JSON
    -- strings cannot hold an unescaped quote, so a `"delivery_tag"` key
    -- cannot be faked from inside a header value.
    local tag, exchange, routing_key, redelivered = nil, '', '', 0
    local props = string.find(item, '"properties"%s*:%s*{')
    if props then
      tag = string.match(item, '"delivery_tag"%s*:%s*"([^"]*)"', props)
      exchange = string.match(item, '"exchange"%s*:%s*"([^"]*)"', props) or ''
      routing_key = string.match(item, '"routing_key"%s*:%s*"([^"]*)"', props) or ''
      if string.find(item, '"redelivered"%s*:%s*true') then redelivered = 1 end
    end
    if type(tag) ~= 'string' or tag == '' then
      -- Not an envelope we can track: hand it to the worker under a fresh
      -- tag, recorded so that nothing is lost if the worker dies now.
      tag = 'celeriac-untracked-' .. redis.call('INCR', prefix .. 'celeriac.untracked_seq')
      redis.call('HSET', KEYS[1], tag, cjson.encode({item, '', string.sub(KEYS[i], #prefix + 1)}))
    else
      redis.call('HSET', KEYS[1], tag,
        '[' .. item .. ',' .. cjson.encode(exchange) .. ',' .. cjson.encode(routing_key) .. ']')
    end
    redis.call('ZADD', KEYS[2], now, tag)
    redis.call('SADD', KEYS[4], tag)
    out[#out + 1] = tag
    out[#out + 1] = item
    out[#out + 1] = i - 4
    out[#out + 1] = redelivered
    taken = taken + 1
  end
  if taken >= max then break end
end
out[#out + 1] = #due
return out
