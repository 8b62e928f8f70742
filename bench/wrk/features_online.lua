-- POST /v1/features/online (modelport) or /get-online-features (feast serve): the 10 features
-- of one user, the id cycling through WRK_IDS ids; WRK_KEY, when set, is sent as a bearer key.
local path = os.getenv("WRK_PATH")
local key = os.getenv("WRK_KEY")
local ids = tonumber(os.getenv("WRK_IDS"))
local counter = 0
local features = {}
for j = 0, 9 do features[#features + 1] = '"user_stats:f' .. j .. '"' end
local head = '{"features": [' .. table.concat(features, ", ") .. '], "entities": {"user_id": ['

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if key ~= nil and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end

request = function()
  counter = (counter + 1) % ids
  return wrk.format(nil, path, nil, head .. counter .. "]}}")
end
