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

-- 2. Reserve: pop in bulk (RPOP with a count), then record every message
-- with one HSET, one ZADD and one SADD; per-message redis.call overhead is
-- what limits a script like this.
local out = {}
local taken = 0
local hash_args, index_args, held_args = {}, {}, {}
for i = 5, #KEYS do
  if taken >= max then break end
  local items = redis.call('RPOP', KEYS[i], max - taken)
  if items then
    for _, item in ipairs(items) do
      -- Read the tag, exchange and routing key by string matching in the
      -- envelope's tail, where kombu and we both write "properties" (the
      -- last key): a JSON decode, or a scan of a large body, would cost more
      -- than the Redis commands themselves. JSON strings cannot hold an
      -- unescaped quote, so these keys cannot be faked from inside a value.
      local tag, exchange, routing_key, redelivered = nil, '', '', 0
      local from = #item - 600
      if from < 1 then from = 1 end
      local props = string.find(item, '"properties"', from, true)
      if not props then props = string.find(item, '"properties"', 1, true) end
      if props then
        -- Plain finds (memchr speed) locate each key; the patterns are then
        -- anchored at it. An unanchored pattern scan costs several µs per
        -- message in Lua's matcher, more than all the Redis commands here.
        local at = string.find(item, '"delivery_tag"', props, true)
        if at then
          tag = string.match(item, '^"delivery_tag"%s*:%s*"([^"]*)"', at)
        end
        at = string.find(item, '"exchange"', props, true)
        if at then
          exchange = string.match(item, '^"exchange"%s*:%s*"([^"]*)"', at) or ''
        end
        at = string.find(item, '"routing_key"', props, true)
        if at then
          routing_key = string.match(item, '^"routing_key"%s*:%s*"([^"]*)"', at) or ''
        end
        at = string.find(item, '"redelivered"', props, true)
        if at and string.find(item, '^"redelivered"%s*:%s*true', at) then
          redelivered = 1
        end
      end
      local value
      if type(tag) ~= 'string' or tag == '' then
        -- Not an envelope we can track: hand it to the worker under a
        -- fresh tag, recorded so that nothing is lost if the worker dies.
        tag = 'celeriac-untracked-' .. redis.call('INCR', prefix .. 'celeriac.untracked_seq')
        value = cjson.encode({item, '', string.sub(KEYS[i], #prefix + 1)})
      else
        -- The captures are raw JSON string contents: quoting them again
        -- reproduces the original text exactly.
        value = '[' .. item .. ',"' .. exchange .. '","' .. routing_key .. '"]'
      end
      hash_args[#hash_args + 1] = tag
      hash_args[#hash_args + 1] = value
      index_args[#index_args + 1] = now
      index_args[#index_args + 1] = tag
      held_args[#held_args + 1] = tag
      out[#out + 1] = tag
      out[#out + 1] = item
      out[#out + 1] = i - 4
      out[#out + 1] = redelivered
      taken = taken + 1
    end
  end
end
if taken > 0 then
  redis.call('HSET', KEYS[1], unpack(hash_args))
  redis.call('ZADD', KEYS[2], unpack(index_args))
  redis.call('SADD', KEYS[4], unpack(held_args))
end
out[#out + 1] = #due
return out
