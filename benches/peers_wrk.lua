-- wrk script for benches/peers.sh: posts ~600 B `statement.made` events, 1 or N per request,
-- each request to one of PEERS_STREAMS streams drawn at random, and writes one summary line
-- to ANNALS_WRK_OUT. It must never send an event the server would refuse: a non-2xx answer
-- counts as an error, and the run's row says so.
--
-- Environment: ANNALS_KEY (bearer key with the append scope), ANNALS_EVENTS (events per
-- request), PEERS_STREAMS (default 1000), ANNALS_WRK_OUT (summary file).

local key = os.getenv("ANNALS_KEY") or ""
local per_request = tonumber(os.getenv("ANNALS_EVENTS") or "1")
local streams = tonumber(os.getenv("PEERS_STREAMS") or "1000")
local out = os.getenv("ANNALS_WRK_OUT") or "/dev/stdout"

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. key
end

-- About 600 bytes once the statement id is filled in: the shape of the peers' event_600b.json.
local head = '{"type":"statement.made","occurred":{"start":"2026-11-25","precision":"day"},'
  .. '"process":"peers-bench","data":{"statement_id":"statement:peers-'
local tail = '","speaker":"actor:mfa-ru","content":"The delegations agreed to continue technical '
  .. 'consultations on a phased ceasefire, prisoner exchanges and humanitarian corridors, and to '
  .. 'meet again after expert groups report.","tone":"constructive","claims":["Technical '
  .. 'consultations on a phased ceasefire continue.","The delegations meet again after expert '
  .. 'groups report."]},"evidence":[{"source":'
  .. '"src:peers-wire","relation":"quotes","quote":"agreed to continue technical consultations",'
  .. '"locator":"para 2"}]}'

local function event()
  counter = counter + 1
  return head .. tid .. "-" .. counter .. tail
end

function request()
  local path = "/streams/peers%2Fs-" .. math.random(streams) .. "/events"
  local body
  if per_request == 1 then
    body = event()
  else
    local parts = {}
    for i = 1, per_request do
      parts[i] = event()
    end
    body = '{"expected_version":"any","events":[' .. table.concat(parts, ",") .. ']}'
  end
  return wrk.format(nil, path, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  local f = assert(io.open(out, "w"))
  -- requests, duration (µs), errors, p50, mean, p99, max (µs)
  f:write(string.format("%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\n", summary.requests,
    summary.duration, errors, latency:percentile(50), latency.mean, latency:percentile(99),
    latency.max))
  f:close()
end
