-- KEYS: the bulk's seen set. ARGV: members. Returns 1 per member new to the set, else 0.
local new = {}
for i, member in ipairs(ARGV) do
  new[i] = redis.call('SADD', KEYS[1], member)
end
return new
