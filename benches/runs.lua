-- wrk script: GET /v1/workflows/{id} for every run id in the file $IDS, in turn.
local ids = {}
for line in io.lines(os.getenv("IDS")) do
  ids[#ids + 1] = line
end
local next_id = 0
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")

request = function()
  next_id = next_id % #ids + 1
  return wrk.format("GET", "/v1/workflows/" .. ids[next_id])
end
