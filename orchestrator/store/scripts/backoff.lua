-- A 429 that named no delay: cut the connection's share of its rate (multiplicative
-- decrease); reserve.lua lets it grow back with time (additive increase).
-- KEYS: the back-off hash. ARGV: factor, floor share, share recovered per ms, hold ms.
-- Cuts at most once per hold: the 429s of one overload, arriving together, are one signal.
-- Returns the share now in force.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local factor, floor = tonumber(ARGV[1]), tonumber(ARGV[2])
local recover, hold = tonumber(ARGV[3]), tonumber(ARGV[4])
local share = 1
local cut = redis.call('HMGET', KEYS[1], 'share', 'at_ms')
if cut[1] then
  local at = tonumber(cut[2])
  share = math.min(1, tonumber(cut[1]) + (now - at) * recover)
  if now - at < hold then return tostring(share) end
end
local new = math.max(floor, share * factor)
redis.call('HSET', KEYS[1], 'share', tostring(new), 'at_ms', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((1 - new) / recover) + 1000)
return tostring(new)
