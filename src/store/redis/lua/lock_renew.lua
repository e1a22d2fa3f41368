-- Renews a lock its owner still holds.
-- KEYS[1] the lock
-- ARGV[1] owner token, ARGV[2] new time to live in milliseconds
-- Replies 1 when renewed, 0 when the lock is someone else's or gone.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
