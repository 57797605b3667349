-- Return reservations older than the visibility timeout to their queues
-- (kombu's restore_visible), unless a kombu restorer holds unacked_mutex.
--
-- KEYS[1] unacked, KEYS[2] unacked_index, KEYS[3] unacked_mutex.
-- ARGV[1] ceiling (now - visibility timeout), ARGV[2] limit.
-- Returns the expired tags; the caller settles each with settle.lua
-- (mode 'front'), each of which is atomic on its own.

if redis.call('EXISTS', KEYS[3]) == 1 then return {} end
return redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
