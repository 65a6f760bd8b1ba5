-- POST /predict. Each request gets its own feature vector (a counter nudges two features),
-- so the service's cache never answers: cache misses (unique = false repeats one body).
-- The counter starts at this run's own base ($base, new for every wrk run of the suite) plus
-- a stride per wrk thread, so neither a later run against the same server nor another thread
-- of this run sends a body the cache has seen.
counter = $base
local unique = $unique
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("counter", $base + threads * 1000000)
end
request = function()
  counter = counter + 1
  local a, b = 0.5, 0.9
  if unique then a = 0.5 + counter * 1e-13; b = 0.9 - counter * 1e-13 end
  local body = string.format(
    '{"features":[%.15f,1.2,-0.3,0.8,1.5,0.2,-0.1,%.15f],"observation_id":"bench"}', a, b)
  return wrk.format("POST", "$path", {["Content-Type"] = "application/json"}, body)
end
