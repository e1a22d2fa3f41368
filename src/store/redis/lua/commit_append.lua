-- Appends bytes to the tail. ARGV[5] the bytes.
redis.call('APPEND', KEYS[2], ARGV[5])
redis.call('HSET', KEYS[1], 'offset', ARGV[4])
announce(KEYS[4], 6)
return 'OK'
