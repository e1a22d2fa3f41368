-- Writes the events of a state change to the outbox stream, in the same
-- script as the change. Events are the last arguments, four per event:
-- id, type, upload id, body. `stream` is nil on a Redis Cluster, where the
-- stream lives on another slot and the adapter writes it after the script.
local function announce(stream, from)
  if not stream then return end
  for i = from, #ARGV, 4 do
    redis.call('XADD', stream, '*', 'id', ARGV[i], 'type', ARGV[i + 1],
      'upload', ARGV[i + 2], 'event', ARGV[i + 3])
  end
end
