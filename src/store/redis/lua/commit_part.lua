-- Records a part the object store acknowledged. ARGV[5] part number,
-- ARGV[6] '<size> <etag>', ARGV[7] '1' if the part began with the stored
-- tail, which is dropped in the same step.
redis.call('HSET', KEYS[1], 'p:' .. ARGV[5], ARGV[6])
if ARGV[7] == '1' then redis.call('DEL', KEYS[2]) end
redis.call('HSET', KEYS[1], 'offset', ARGV[4])
announce(KEYS[4], 8)
return 'OK'
