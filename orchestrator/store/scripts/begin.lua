-- KEYS: outcome, job state, bulk record (a placeholder without a bulk), superseded jobs
-- (hash), the run's in-flight marker.
-- ARGV: now_s, progress_keep_s, the bulk record's status field, its aborted value, job id.
-- Returns {'outcome', json} | {'aborted'} | {'superseded', by job id} | {'progress', ...}.
-- Superseded: a forced cancel replaced this job's marker (admit.lua), or the marker now
-- names another job (it expired while this job was lost, and a new one was admitted).
local done = redis.call('GET', KEYS[1])
if done then
  return {'outcome', done}
end
if redis.call('HGET', KEYS[3], ARGV[3]) == ARGV[4] then
  return {'aborted'}
end
local by = redis.call('HGET', KEYS[4], ARGV[5])
if not by then
  local holder = redis.call('GET', KEYS[5])
  if holder and holder ~= ARGV[5] then
    by = holder
  end
end
if by then
  return {'superseded', by}
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[2], 'started_at', ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
local progress = redis.call('HGETALL', KEYS[2])
table.insert(progress, 1, 'progress')
return progress
