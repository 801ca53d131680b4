-- wrk script: replays request bodies from a file (one JSON body per line), cycling, as POSTs
-- with Content-Type: application/json. The file and the alerts per body come from the
-- environment: BENCH_BODIES, BENCH_PER (default 10); BENCH_AUTH adds an Authorization header.
-- Prints the same RESULT line as shared/bench/alerts.lua.
local bodies, idx = {}, 0
local PER = tonumber(os.getenv("BENCH_PER") or "10")

function init(args)
  local headers = {["Content-Type"] = "application/json"}
  local auth = os.getenv("BENCH_AUTH")
  if auth and auth ~= "" then headers["Authorization"] = auth end
  for line in io.lines(os.getenv("BENCH_BODIES")) do
    bodies[#bodies + 1] = wrk.format("POST", nil, headers, line)
  end
end

function request()
  idx = idx % #bodies + 1
  return bodies[idx]
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT reqs=%d non2xx=%d sockerr=%d secs=%.2f req_s=%.0f alerts_s=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    secs, summary.requests / secs, summary.requests * PER / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000))
end
