-- Sets one field of the record: 'length' of a deferred upload, 'state', or
-- 'mp' (the multipart upload, started once the first part is coming).
-- ARGV[5] field name, ARGV[6] value. A completed upload needs no tail.
redis.call('HSET', KEYS[1], ARGV[5], ARGV[6])
if ARGV[5] == 'state' and ARGV[6] == 'completed' then redis.call('DEL', KEYS[2]) end
redis.call('HSET', KEYS[1], 'offset', ARGV[4])
announce(KEYS[4], 7)
return 'OK'
