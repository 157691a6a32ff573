-- KEYS[1]: a connection's settle-time histogram (hash: bin -> decayed weight, plus the
-- landmark field). ARGV: now_s, half_life_s, keep_s, the landmark field's name, then
-- bin/weight pairs. Forward decay: a weight added now is scaled by 2^((now - landmark) /
-- half_life); when that factor grows large, every bin is rescaled and the landmark moves.
local now = tonumber(ARGV[1])
local half_life = tonumber(ARGV[2])
local landmark_field = ARGV[4]
local landmark = tonumber(redis.call('HGET', KEYS[1], landmark_field) or '')
if landmark == nil then
  landmark = now
  redis.call('HSET', KEYS[1], landmark_field, tostring(now))
end
local age = (now - landmark) / half_life
if age > 60 then
  local shrink = 2 ^ (-age)
  local fields = redis.call('HGETALL', KEYS[1])
  for i = 1, #fields, 2 do
    if fields[i] ~= landmark_field then
      redis.call('HSET', KEYS[1], fields[i], tostring(tonumber(fields[i + 1]) * shrink))
    end
  end
  landmark = now
  age = 0
  redis.call('HSET', KEYS[1], landmark_field, tostring(now))
end
local scale = 2 ^ age
for i = 5, #ARGV, 2 do
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], tonumber(ARGV[i + 1]) * scale)
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 0
