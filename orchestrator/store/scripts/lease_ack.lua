-- Forget an acknowledged message, unless another worker holds it now.
-- KEYS: the owners hash, kombu's unacked hash, kombu's unacked index.
-- ARGV: delivery tag, the acknowledging worker's id.
-- A worker whose lease lapsed (stopped, starved) may finish a job whose message was
-- returned and taken by another worker, under the same delivery tag: its late ack must not
-- erase the new holder's record. Returns 1 when forgotten, 0 when left to its holder.
local owner = redis.call('HGET', KEYS[1], ARGV[1])
if owner and owner ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
