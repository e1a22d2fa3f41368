-- Removes an upload's record and tail, with its events (see outbox.lua).
-- KEYS[1] the record, KEYS[2] the tail, KEYS[3] the stream events go to. ARGV: the events. Replies 1.
redis.call('DEL', KEYS[1], KEYS[2])
announce(KEYS[3], 1)
return 1
