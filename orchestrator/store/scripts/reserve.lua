-- KEYS: global tat, bulk tat (or a dummy), pause, bulk record (or a dummy), back-off.
-- ARGV: global interval ms (0 = unlimited), bulk id ('' = none), max wait ms, burst ms,
-- then the bulk record's status field, its aborted value and its rate field, and the share
-- of the rate a back-off recovers per ms (see backoff.lua).
-- Returns {status, wait_ms}: status 0 reserved, 1 no slot within max wait, 2 aborted.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local max_wait = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local bulk = ARGV[2] ~= ''
local bulk_interval = 0
if bulk then
  local fields = redis.call('HMGET', KEYS[4], ARGV[5], ARGV[7])
  if fields[1] == ARGV[6] then return {2, 0} end
  local rate = tonumber(fields[2] or '0') or 0
  if rate > 0 then bulk_interval = 1000 / rate end
end
local wait = 0
local pause = redis.call('PTTL', KEYS[3])
if pause > 0 then wait = pause end
local function slot(key, interval)
  if interval <= 0 then return nil end
  local tat = tonumber(redis.call('GET', key) or '0') or 0
  local start = tat - burst
  if start < now + wait then start = now + wait end
  return {tat, start - now}
end
-- After a 429 without a delay the connection runs at a share of its rate, which grows
-- back with time (additive increase); backoff.lua cuts it (multiplicative decrease).
local interval = tonumber(ARGV[1])
local cut = redis.call('HMGET', KEYS[5], 'share', 'at_ms')
if cut[1] then
  local share = tonumber(cut[1]) + (now - tonumber(cut[2])) * tonumber(ARGV[8])
  if share < 1 then interval = interval / share end
end
local g = slot(KEYS[1], interval)
local b = bulk and slot(KEYS[2], bulk_interval) or nil
if g and g[2] > wait then wait = g[2] end
if b and b[2] > wait then wait = b[2] end
if wait > max_wait then return {1, math.floor(wait)} end
-- Every bucket is charged at the moment this request really goes (the latest of its
-- slots), so a bucket that holds it back does not leave another's slot unused.
local at = now + wait
local function take(key, s, interval)
  if s then
    local tat = s[1]
    if tat < at then tat = at end
    local next_tat = tat + interval
    redis.call('SET', key, tostring(next_tat), 'PX', math.ceil(next_tat - now + 60000))
  end
end
take(KEYS[1], g, interval)
take(KEYS[2], b, bulk_interval)
return {0, math.floor(wait)}
