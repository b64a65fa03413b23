-- wrk script: POST a small two-deliverable plan to /v1/plans/execute. Every accepted plan is a
-- 201; wrk reports any other status as "Non-2xx or 3xx responses".
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = [[{"deliverables":[{"id":"api","steps":[{"name":"dev","run":"true"}]},{"id":"docs","dependencies":["api"],"steps":[{"name":"docs","run":"true"}]}]}]]
