-- KEYS: pause, global tat. ARGV: delay ms. Extends the pause, never shortens it, and moves
-- the schedule past it, so that slots are handed out after the pause, not during it.
local current = redis.call('PTTL', KEYS[1])
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
local t = redis.call('TIME')
local resume = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000 + tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if tat < resume then
  redis.call('SET', KEYS[2], tostring(resume), 'PX', math.ceil(tonumber(ARGV[1]) + 60000))
end
return 0
