-- Sets the 'expires' field of a record that still exists.
-- KEYS[1] the upload's record (hash)
-- ARGV[1] seconds since the Unix epoch, or '' for never
-- Replies 1 when set, 0 when the record is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'expires', ARGV[1])
return 1
