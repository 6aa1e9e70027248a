--- `:SageStatus`, `:SageStart` and `:SageStop`: the session backend.
local chat = require('sage.chat')
local client = require('sage.client')
local status = require('sage.status')

local M = {}

---@param method string
local function call(method)
  client.call(method, nil, function(result)
    vim.notify(status.describe(status.update(result)), vim.log.levels.INFO)
  end)
end

--- Shows the backend's state (`sage/backend/status`).
function M.status()
  call('sage/backend/status')
end

--- Prepares the backend now (`sage/backend/start`).
function M.start()
  call('sage/backend/start')
end

--- Stops the running answer if there is one; otherwise releases the backend
--- (`sage/backend/stop`), which lets a model service this session holds stop.
function M.stop()
  if not chat.cancel() then
    call('sage/backend/stop')
  end
end

return M
