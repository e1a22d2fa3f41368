-- Writes a new record in one step, or nothing if the id exists.
-- KEYS[1] the upload's record (hash)
-- ARGV field, value, field, value, ...
-- Replies 1 when written, 0 when the record exists.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
