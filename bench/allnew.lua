-- wrk script: every request carries 10 alerts never sent before (a per-thread counter in the
-- pod label), for the all-new benchmark. BENCH_MODE=am posts AlertManager's /api/v2/alerts
-- array; BENCH_MODE=webhook wraps the same alerts in a version-4 webhook body (without
-- fingerprints: the service computes them from the labels, as for any sender that omits them).
-- Prints the same RESULT line as shared/bench/alerts.lua.
local PER = 10
local mode = os.getenv("BENCH_MODE") or "webhook"
local threads, counter, tid = {}, 0, 0
local starts = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 300)
local ends = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 3600)

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  tid = tonumber(wrk.thread:get("tid")) or 0
end

local function alert(n)
  return string.format(
    '{"labels":{"alertname":"AllNew","severity":"warning","namespace":"bench","pod":"t%d-%d","job":"kube-state-metrics"},'..
    '"annotations":{"summary":"all-new alert %d/%d"},"startsAt":"%s","endsAt":"%s","generatorURL":"http://prometheus:9090/graph"%s}',
    tid, n, tid, n, starts, ends, mode == "webhook" and ',"status":"firing"' or "")
end

function request()
  local t = {}
  for j = 1, PER do
    counter = counter + 1
    t[j] = alert(counter)
  end
  local alerts = "[" .. table.concat(t, ",") .. "]"
  local body
  if mode == "webhook" then
    body = '{"version":"4","groupKey":"{}:{alertname=\\"AllNew\\"}","status":"firing","receiver":"sre","groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://alertmanager:9093","truncatedAlerts":0,"alerts":' .. alerts .. '}'
  else
    body = alerts
  end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
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
