-- KEYS: bulk record, seen set, bulk-finished stream. ARGV: now (ISO), failure ('' when
-- none), bulk id. Every outcome may have landed already: then the bulk job finishes here
-- (else the publish script of its last outcome says so, see publish.lua).
redis.call('HSET', KEYS[1], 'enqueued_at', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'enqueue_failed', ARGV[2]) end
if redis.call('HGET', KEYS[1], 'status') == 'enqueueing' then
  redis.call('HSET', KEYS[1], 'status', 'running')
end
redis.call('DEL', KEYS[2])
local done = tonumber(redis.call('HGET', KEYS[1], 'done') or '0')
local queued = tonumber(redis.call('HGET', KEYS[1], 'queued') or '0')
if done >= queued and redis.call('HSETNX', KEYS[1], 'finished', '1') == 1 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'bulk_id', ARGV[3])
end
return 0
