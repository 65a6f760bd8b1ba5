-- One stream per wrk thread (one connection each, so its readings arrive in order);
-- timestamps go up 300 s per request from t0. Each thread counts the answers its store
-- served fail-open from process memory ("degraded": a Redis call failed); done() prints it.
local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("sid", counter)
  table.insert(threads, thread)
end
degraded = 0
function response(status, headers, body)
  if string.find(body, '"degraded":true', 1, true) then degraded = degraded + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("degraded") end
  io.write(string.format("degraded answers: %d\n", total))
end
local n = 0
request = function()
  n = n + 1
  local body = string.format(
    '{"timestamps":[%d],"readings":[[%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f]]}',
    $t0 + n * 300, math.sin(n / 7), math.cos(n / 5), math.sin(n / 3) * 0.5, 0.1,
    math.cos(n / 11), math.sin(n / 13), 0.2 + n * 1e-6, -0.1)
  return wrk.format("POST", "/streams/bench-" .. sid .. "/readings",
    {["Content-Type"] = "application/json"}, body)
end
