-- POST /v1/carts/{cart}/lines with a (cart, icon, token) triple no other request uses.
-- ICONMARKET_BENCH_PAIRS names a file of "cart icon token" lines, written by bench/commands.py.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  pairs_list = {}
  for line in io.lines(os.getenv("ICONMARKET_BENCH_PAIRS")) do
    local cart, icon, token = line:match("(%S+) (%S+) (%S+)")
    table.insert(pairs_list, {cart, icon, token})
  end
  stride = tonumber(os.getenv("ICONMARKET_BENCH_THREADS"))
  index = id + 1
end

function request()
  local pair = pairs_list[index]
  index = index + stride
  if index > #pairs_list then index = id + 1 end
  local body = '{"product_kind":"icon","product_id":"' .. pair[2] .. '"}'
  return wrk.format("POST", "/v1/carts/" .. pair[1] .. "/lines",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. pair[3]}, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
