-- Take one reservation out of `unacked` and put its message back on a list,
-- now (requeue, restore) or later (defer to the delayed set).
--
-- KEYS[1] unacked, KEYS[2] unacked_index, KEYS[3] delayed.
-- ARGV[1] tag, ARGV[2] mode ('front' | 'restore' | 'defer'), ARGV[3] due
-- time (defer) or ceiling (restore: skip if the lease was renewed since),
-- ARGV[4] key prefix, ARGV[5] separator, ARGV[6] binding-set prefix.
--
-- The queue is found as kombu finds it: the anonymous exchange routes by
-- routing key; a named exchange through its `_kombu.binding.*` members.
-- The list is the priority list of the message's priority step.

if ARGV[2] == 'restore' then
  local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if score and tonumber(score) > tonumber(ARGV[3]) then return 0 end
end
local raw = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if not raw then return 0 end

local prefix, sep = ARGV[4], ARGV[5]
-- Keep the message bytes as they were: cut `[M, "ex", "rk"]` by pattern
-- instead of re-encoding M (cjson would turn [null, null] into {}).
local message, exchange, routing_key =
  string.match(raw, '^%[%s*(.*)%s*,%s*"([^"]*)"%s*,%s*"([^"]*)"%s*%]%s*$')
if not message then
  local ok, decoded = pcall(cjson.decode, raw)
  if not ok or type(decoded) ~= 'table' or type(decoded[1]) ~= 'string' then return -1 end
  message, exchange, routing_key = decoded[1], decoded[2] or '', decoded[3] or ''
end

local queues = {}
if exchange == '' then
  queues[1] = routing_key
else
  for _, member in ipairs(redis.call('SMEMBERS', ARGV[6] .. exchange)) do
    local rk, rest = string.match(member, '^(.-)' .. sep .. '(.*)$')
    if rk then
      local _, queue = string.match(rest, '^(.-)' .. sep .. '(.*)$')
      if queue and (rk == routing_key or rk == '') then queues[#queues + 1] = queue end
    end
  end
  if #queues == 0 then queues[1] = routing_key end
end

local step = 0
local ok, env = pcall(cjson.decode, message)
if ok and type(env) == 'table' and type(env.properties) == 'table' then
  local p = tonumber(env.properties.priority) or 0
  if p >= 9 then step = 9 elseif p >= 6 then step = 6 elseif p >= 3 then step = 3 end
end

for _, queue in ipairs(queues) do
  local list = prefix .. queue
  if step > 0 then list = list .. sep .. step end
  if ARGV[2] == 'defer' then
    redis.call('ZADD', KEYS[3], tonumber(ARGV[3]), list .. sep .. message)
  else
    redis.call('RPUSH', list, message)
  end
end
return 1
