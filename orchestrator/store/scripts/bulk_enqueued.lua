-- KEYS: bulk record, seen set. ARGV: now (ISO), failure ('' when none).
redis.call('HSET', KEYS[1], 'enqueued_at', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'enqueue_failed', ARGV[2]) end
if redis.call('HGET', KEYS[1], 'status') == 'enqueueing' then
  redis.call('HSET', KEYS[1], 'status', 'running')
end
redis.call('DEL', KEYS[2])
return 0
