-- wrk script: replay a pre-generated list of requests, one connection per wrk thread.
--
-- Usage: wrk -t N -c N -d <cap> -s replay.lua http://127.0.0.1:PORT -- <data.lua>
-- <data.lua> returns {reqs = {{method, path, body, expected_status}, ...}, nthreads = N,
-- host = "127.0.0.1:PORT", close = bool, deadline = seconds, out = "<path prefix>",
-- auth = "Bearer ..." (optional: sent as the Authorization header of every request),
-- denied = {401, 403}}.
-- Thread k (0-based) replays requests k+1, k+1+N, ... and, when it has replayed its share or
-- passed the deadline, writes "<out>.<k>" (first line: start end sent answered bad denied,
-- then one latency per line in microseconds) and stops. "bad" counts answers whose status is
-- not the expected one; "denied" those of them that are 401/403 (not authenticated).
-- Latency is the closed-loop cycle time: from the end of the previous response (or the first
-- request) to the end of this response, so in close mode it includes connecting. Only
-- answers with the expected status get a latency line (as in the Python engine); after a
-- request that got no answer, the next cycle starts when its request is written. wrk's own summary is not used: its main thread sleeps for
-- the whole -d duration and it "corrects" latencies for coordinated omission.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } regbench_timespec;
int clock_gettime(int clk_id, regbench_timespec *tp);
]])
local ts = ffi.new("regbench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC, same clock as Python's time.monotonic()
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local counter, threads = 0, {}
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  threads[#threads + 1] = thread
end

-- What a thread reports is global (not local) so that done() can read it with thread:get.
local mine, expect, denied_status = {}, {}, {}
lat, sent, answered, bad, denied = {}, 0, 0, 0, 0
t_start, t_prev, out, finished = nil, nil, nil, false
local lost, deadline, verifying = 0, nil, false

function init(args)
  local data = dofile(args[1])
  out = data.out .. "." .. tid
  -- wrk calls request() once on thread 0 before starting, to check the request parses.
  verifying = tid == 0
  deadline = data.deadline
  for _, status in ipairs(data.denied or {}) do denied_status[status] = true end
  for i = tid + 1, #data.reqs, data.nthreads do
    local r = data.reqs[i]
    local headers = {Host = data.host}
    if #r[3] > 0 then headers["Content-Type"] = "application/json" end
    if data.close then headers["Connection"] = "close" end
    if data.auth then headers["Authorization"] = data.auth end
    mine[#mine + 1] = wrk.format(r[1], r[2], headers, #r[3] > 0 and r[3] or nil)
    expect[#expect + 1] = r[4]
  end
end

local function report(r)
  local f = assert(io.open(r.out .. ".tmp", "w"))
  f:write(string.format(
    "%.6f %.6f %d %d %d %d\n", r.t_start or 0, r.t_prev or 0, r.sent, r.answered, r.bad, r.denied
  ))
  for i = 1, #r.lat do f:write(string.format("%d\n", r.lat[i])) end
  f:close()
  os.rename(r.out .. ".tmp", r.out)
end

local function finish()
  if finished then return end
  finished = true
  report({out = out, t_start = t_start, t_prev = t_prev, sent = sent, answered = answered,
          bad = bad, denied = denied, lat = lat})
  wrk.thread:stop()
end

-- Runs once wrk has stopped (its -d ran out, or SIGINT): a thread that has not reported is
-- waiting for an answer that never came (wrk's --timeout does not abort a request). Its
-- report is written here, the request in flight counted as sent and unanswered.
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    if not t:get("finished") and t:get("out") then
      local r = {}
      for _, k in ipairs({"out", "t_start", "t_prev", "sent", "answered", "bad", "denied", "lat"}) do
        r[k] = t:get(k)
      end
      report(r)
    end
  end
end

function request()
  if verifying then
    verifying = false
    return mine[1]
  end
  if t_start == nil then
    t_start = now()
    t_prev = t_start
  end
  if sent > answered + lost then
    -- the last request got no answer (wrk reconnected after an error): its time is in no
    -- latency, so the next cycle starts now
    lost = sent - answered
    t_prev = now()
  end
  if sent >= #mine then
    finish()
    return mine[#mine]
  end
  sent = sent + 1
  return mine[sent]
end

function response(status, headers, body)
  local t = now()
  answered = answered + 1
  if status == expect[sent] then
    lat[#lat + 1] = math.floor((t - t_prev) * 1e6 + 0.5)
  else
    bad = bad + 1
    if denied_status[status] then denied = denied + 1 end
  end
  t_prev = t
  if sent >= #mine or t - t_start > deadline then finish() end
end
