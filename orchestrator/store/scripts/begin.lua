-- KEYS: outcome, job state, bulk record (a placeholder without a bulk).
-- ARGV: now_s, progress_keep_s, the bulk record's status field, its aborted value.
local done = redis.call('GET', KEYS[1])
if done then
  return {'outcome', done}
end
if redis.call('HGET', KEYS[3], ARGV[3]) == ARGV[4] then
  return {'aborted'}
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[2], 'started_at', ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
local progress = redis.call('HGETALL', KEYS[2])
table.insert(progress, 1, 'progress')
return progress
