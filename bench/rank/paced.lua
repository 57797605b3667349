-- wrk script: as post.lua, but each connection waits args[2] milliseconds
-- after each answer before its next request, so that N connections send
-- about N * 1000 / (wait + latency) requests per second (the driver picks
-- the wait for a target rate and reports the rate actually reached).
local req
local pause_ms

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local body = f:read("*a")
  f:close()
  req = wrk.format("POST", "/rank", { ["Content-Type"] = "application/json" }, body)
  pause_ms = tonumber(args[2])
end

function request()
  return req
end

function delay()
  return pause_ms
end
