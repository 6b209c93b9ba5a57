-- wrk script for P5: cycle through the session cookies of a file (one Cookie header a line),
-- and count answers that are not 200 or that carry a Set-Cookie (a refused session).
-- usage: wrk -t1 -s benchmarks/cycle_cookies.lua URL -- COOKIE_FILE START_INDEX
local cookies = {}
local i = 0
bad = 0
set_cookie = 0
responses = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    cookies[#cookies + 1] = line
  end
  i = tonumber(args[2]) or 0
end

function request()
  i = i + 1
  return wrk.format("GET", "/", {["Cookie"] = cookies[(i % #cookies) + 1]})
end

function response(status, headers, body)
  responses = responses + 1
  if status ~= 200 then
    bad = bad + 1
  end
  if headers["Set-Cookie"] ~= nil or headers["set-cookie"] ~= nil then
    set_cookie = set_cookie + 1
  end
end

function done(summary, latency, requests)
  local b, s, r = 0, 0, 0
  for _, thread in ipairs(threads) do
    b = b + thread:get("bad")
    s = s + thread:get("set_cookie")
    r = r + thread:get("responses")
  end
  io.write(string.format("BENCH bad=%d\nBENCH set_cookie=%d\nBENCH responses=%d\n", b, s, r))
end
