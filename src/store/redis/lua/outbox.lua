-- Writes the events of a state change to a stream, in the same script as
-- the change: the outbox itself, or on a Redis Cluster, where the outbox
-- lives on another slot, the upload's own pending stream, which the adapter
-- relays to the outbox. Events are the last arguments, four per event: id,
-- type, upload id, body.
local function announce(stream, from)
  if not stream then return end
  for i = from, #ARGV, 4 do
    redis.call('XADD', stream, '*', 'id', ARGV[i], 'type', ARGV[i + 1],
      'upload', ARGV[i + 2], 'event', ARGV[i + 3])
  end
end
