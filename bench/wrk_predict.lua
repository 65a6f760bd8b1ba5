-- POST /predict. Each request gets its own feature vector (a counter nudges two features),
-- so the service's cache never answers: cache misses (unique = false repeats one body).
local counter = 0
local unique = $unique
request = function()
  counter = counter + 1
  local a, b = 0.5, 0.9
  if unique then a = 0.5 + counter * 1e-9; b = 0.9 - counter * 1e-9 end
  local body = string.format(
    '{"features":[%.12f,1.2,-0.3,0.8,1.5,0.2,-0.1,%.12f],"observation_id":"bench"}', a, b)
  return wrk.format("POST", "$path", {["Content-Type"] = "application/json"}, body)
end
