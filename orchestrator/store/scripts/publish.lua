-- KEYS: outcome, stream, job state, inflight, bulk record, bulk outcomes, bulk elsewhere
-- rows (the last three are placeholders for a job without a bulk), bulk-finished stream.
-- ARGV: outcome json, keep_s, maxlen, channel, job_id, the bulk record's field for this
-- result, has bulk (1/0), bulk id, then the bulk record's field names (done, queued,
-- status, finished) and its enqueueing status, then fields... (flat field/value pairs for
-- the stream entry).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local fields = {}
for i = 14, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
redis.call('PUBLISH', ARGV[4], ARGV[1])
redis.call('DEL', KEYS[3])
if redis.call('GET', KEYS[4]) == ARGV[5] then
  redis.call('DEL', KEYS[4])
end
if ARGV[7] == '1' and redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('HINCRBY', KEYS[5], ARGV[6], 1)
  redis.call('HINCRBY', KEYS[5], ARGV[9], 1)
  redis.call('EXPIRE', KEYS[5], ARGV[2])
  redis.call('RPUSH', KEYS[6], ARGV[1])
  redis.call('EXPIRE', KEYS[6], ARGV[2])
  redis.call('EXPIRE', KEYS[7], ARGV[2])
  -- The last outcome of a bulk job that is no longer enqueueing: it finished (once).
  local done = tonumber(redis.call('HGET', KEYS[5], ARGV[9]) or '0')
  local queued = tonumber(redis.call('HGET', KEYS[5], ARGV[10]) or '0')
  if redis.call('HGET', KEYS[5], ARGV[11]) ~= ARGV[13] and done >= queued
      and redis.call('HSETNX', KEYS[5], ARGV[12], '1') == 1 then
    redis.call('XADD', KEYS[8], 'MAXLEN', '~', 100000, '*', 'bulk_id', ARGV[8])
  end
end
return 1
