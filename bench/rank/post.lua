-- wrk script: POST the JSON body of the file given after `--` to /rank, as
-- fast as each connection allows (closed loop). No response() hook: it would
-- make wrk parse every answer in Lua; the driver checks wrk's
-- "Non-2xx or 3xx responses" line instead.
local req

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local body = f:read("*a")
  f:close()
  req = wrk.format("POST", "/rank", { ["Content-Type"] = "application/json" }, body)
end

function request()
  return req
end
