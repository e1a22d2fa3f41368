-- Sets one field of the record: 'length' of a deferred upload, or 'state'.
-- ARGV[5] field name, ARGV[6] value.
redis.call('HSET', KEYS[1], ARGV[5], ARGV[6])
redis.call('HSET', KEYS[1], 'offset', ARGV[4])
announce(KEYS[4], 7)
return 'OK'
