-- Put a held message back at the head of its queue(s), if its holder may lose it.
-- KEYS: the holder's lease, the owners hash, kombu's unacked hash, kombu's unacked index,
--       then one or more queues.
-- ARGV: delivery tag, holder's worker id, the unacked record as read, the message to push,
--       mode: 'lapsed' (a sweep: only if the lease is gone) or 'mine' (the holder itself).
-- Returns 1 when the message went back, 0 when it was left alone (holder alive, another
-- holder since, or no longer held).
local tag, holder, record, payload, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if mode == 'lapsed' and redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local owner = redis.call('HGET', KEYS[2], tag)
if mode == 'lapsed' and owner ~= holder then
  return 0
end
if mode == 'mine' and owner and owner ~= holder then
  return 0
end
if redis.call('HGET', KEYS[3], tag) ~= record then
  if owner == holder then
    redis.call('HDEL', KEYS[2], tag) -- acknowledged or restored already: a stale entry
  end
  return 0
end
redis.call('HDEL', KEYS[2], tag)
redis.call('HDEL', KEYS[3], tag)
redis.call('ZREM', KEYS[4], tag)
for i = 5, #KEYS do
  redis.call('RPUSH', KEYS[i], payload)
end
return 1
