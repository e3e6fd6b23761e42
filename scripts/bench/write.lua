-- wrk script for scripts/bench-backend: POSTs a JSON write with a unique
-- idempotency key per request, so every request is a real write.
-- Arguments after `--`: KIND (error|chat) MISSION_ID RUN_ID TOKEN
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  kind, mission, run, token = args[1], args[2], args[3], args[4]
  counter = 0
  if kind == "error" then path = "/api/errors" else path = "/api/chat" end
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
end

function request()
  counter = counter + 1
  local key = string.format("bench-%s-%s-%d-%d", kind, run, tid, counter)
  local body
  if kind == "error" then
    body = string.format('{"mission_id":"%s","error_type":"timeout","message":"bench","severity":"high",'
      .. '"confidence":0.9,"idempotency_key":"%s"}', mission, key)
  else
    body = string.format('{"mission_id":"%s","session_id":"bench-%d","message":"how is it going?",'
      .. '"idempotency_key":"%s"}', mission, tid, key)
  end
  return wrk.format("POST", path, headers, body)
end
