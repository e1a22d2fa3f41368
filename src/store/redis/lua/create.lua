-- Writes a new record in one step, or nothing if the id exists, with its
-- events (see outbox.lua).
-- KEYS[1] the upload's record (hash), KEYS[2] the stream events go to
-- ARGV[1] the number n of field and value arguments that follow; ARGV[2]
-- to ARGV[n + 1] field, value, field, value, ...; then the events.
-- Replies 1 when written, 0 when the record exists.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2, n + 1))
announce(KEYS[2], n + 2)
return 1
