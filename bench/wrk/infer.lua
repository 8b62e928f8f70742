-- POST one Open Inference Protocol JSON request on every connection, as fast as answers come.
--
--   wrk -t1 -c16 -d10s -s bench/wrk/infer.lua http://127.0.0.1:PORT -- /v2/models/tiny/infer BODY.json [AUTH ...]
--
-- Each optional AUTH argument is a header line, `Name: value`, or a bare token, sent as
-- `Authorization: Bearer TOKEN`. Headers are part of the static request wrk formats once, so
-- they cost the load generator nothing per request.
--
-- At the end prints one line `BENCH_JSON {...}`: requests, duration, req/s, latency p50/p99
-- (microseconds), wrk's socket errors and the number of responses with status >= 400, counted
-- in response() by every thread and summed over the threads in done().

local threads = {}

-- setup() runs in the main Lua state once per thread: keep each thread to read its counters.
function setup(thread)
  table.insert(threads, thread)
end

-- init() runs in each thread before wrk formats its (static) request from the fields set here.
function init(args)
  local path, body_file = args[1], args[2]
  local f = assert(io.open(body_file, "rb"))
  local body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.path = path
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
  for i = 3, #args do
    local name, value = string.match(args[i], "^([%w-]+):%s*(.-)%s*$")
    if name then
      wrk.headers[name] = value
    elseif args[i] ~= "" then
      wrk.headers["Authorization"] = "Bearer " .. args[i]
    end
  end
  -- Per-thread globals, read back from each thread's state in done().
  bad = 0
  first_bad = ""
end

function response(status, headers, body)
  if status >= 400 then
    bad = bad + 1
    if first_bad == "" then
      first_bad = status .. " " .. string.sub(body or "", 1, 200)
    end
  end
end

local function quote(s)
  s = string.gsub(s, "[%c\"\\]", function(c)
    if c == "\"" or c == "\\" then return "\\" .. c end
    return " "
  end)
  return "\"" .. s .. "\""
end

function done(summary, latency, requests)
  local bad_total, first = 0, ""
  for _, thread in ipairs(threads) do
    bad_total = bad_total + (thread:get("bad") or 0)
    local fb = thread:get("first_bad") or ""
    if first == "" then first = fb end
  end
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "BENCH_JSON {\"requests\":%d,\"duration_s\":%.3f,\"rps\":%.2f,"
      .. "\"p50_us\":%d,\"p99_us\":%d,\"mean_us\":%.1f,\"max_us\":%d,"
      .. "\"status_errors\":%d,\"wrk_status_errors\":%d,\"connect\":%d,\"read\":%d,"
      .. "\"write\":%d,\"timeout\":%d,\"first_error\":%s}\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max,
    bad_total, e.status, e.connect, e.read, e.write, e.timeout, quote(first)))
end
