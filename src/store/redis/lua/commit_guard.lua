-- The guard every commit runs first: the compare-and-set that lets only the
-- lock's owner move an upload on from the offset and tail it last saw.
-- KEYS[1] the upload's record (hash), KEYS[2] its tail, KEYS[3] its lock,
-- KEYS[4] the stream events go to
-- ARGV[1] lock token, ARGV[2] expected offset, ARGV[3] expected tail length,
-- ARGV[4] new offset; the change's own arguments follow from ARGV[5], and
-- the events (see outbox.lua) after them.
-- Replies 'LOCK' (not the owner), 'GONE' (no record), 'CONFLICT' (offset or
-- tail moved) before changing anything; otherwise the change below runs and
-- the reply is 'OK'.
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 'LOCK' end
local offset = redis.call('HGET', KEYS[1], 'offset')
if not offset then return 'GONE' end
if offset ~= ARGV[2] then return 'CONFLICT' end
if redis.call('STRLEN', KEYS[2]) ~= tonumber(ARGV[3]) then return 'CONFLICT' end
