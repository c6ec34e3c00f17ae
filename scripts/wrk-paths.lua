-- wrk script: each request takes the next path from a file, round robin, so that a
-- page is measured over many different URLs (no single cached answer).
--   wrk -s scripts/wrk-paths.lua http://HOST:PORT -- PATHS_FILE
local paths = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  -- Each wrk thread starts at its own place in the list.
  i = math.random(#paths)
end

function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
