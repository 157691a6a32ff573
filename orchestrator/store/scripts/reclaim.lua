-- KEYS: fetch list, queue. ARGV: the message. Moves it back to the head of its queue, once.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0
