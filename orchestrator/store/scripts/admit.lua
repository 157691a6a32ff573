-- KEYS[1]: accepted jobs, KEYS[2]: the bulk's jobs (or a placeholder), KEYS[3..]: in-flight
-- markers. ARGV: ttl_s, now_s, keep_s, has bulk (1/0), then the job ids in marker order.
-- Returns, per job, '' when its marker was set (the job is admitted), else the id in flight.
-- Admitted jobs are recorded as accepted (for `runctl audit`), in the same atomic step.
local taken = {}
local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
for i = 3, #KEYS do
  local job_id = ARGV[i + 2]
  if redis.call('SET', KEYS[i], job_id, 'NX', 'EX', ARGV[1]) then
    taken[i - 2] = ''
    redis.call('ZADD', KEYS[1], now, job_id)
    if ARGV[4] == '1' then redis.call('ZADD', KEYS[2], now, job_id) end
  else
    taken[i - 2] = redis.call('GET', KEYS[i])
  end
end
if ARGV[4] == '1' then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
return taken
