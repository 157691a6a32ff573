-- KEYS[1]: accepted jobs, KEYS[2]: the bulk's jobs (or a placeholder), KEYS[3]: superseded
-- jobs (hash: old job id -> the job that replaced it), KEYS[4..]: in-flight markers.
-- ARGV: ttl_s, now_s, keep_s, has bulk (1/0), force (1/0), then the job ids in marker order.
-- Returns, per job, '' when its marker was set (the job is admitted), else the id in flight.
-- With force, a marker held by another job is replaced, and that job is recorded as
-- superseded: if it ever runs, it publishes `skipped` and sends nothing (begin.lua).
-- Admitted jobs are recorded as accepted (for `runctl audit`), in the same atomic step.
local taken = {}
local now = tonumber(ARGV[2])
local force = ARGV[5] == '1'
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
for i = 4, #KEYS do
  local job_id = ARGV[i + 2]
  local admitted = redis.call('SET', KEYS[i], job_id, 'NX', 'EX', ARGV[1])
  if not admitted and force then
    local holder = redis.call('GET', KEYS[i])
    if holder and holder ~= job_id then
      redis.call('HSET', KEYS[3], holder, job_id)
    end
    redis.call('SET', KEYS[i], job_id, 'EX', ARGV[1])
    admitted = true
  end
  if admitted then
    taken[i - 3] = ''
    redis.call('ZADD', KEYS[1], now, job_id)
    if ARGV[4] == '1' then redis.call('ZADD', KEYS[2], now, job_id) end
  else
    taken[i - 3] = redis.call('GET', KEYS[i])
  end
end
if ARGV[4] == '1' then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
return taken
