--- `:SageStatus`, `:SageStart` and `:SageStop`: the session backend.
local chat = require('sage.chat')
local client = require('sage.client')
local methods = require('sage.methods')
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
  call(methods.backend_status)
end

--- Prepares the backend now (`sage/backend/start`).
function M.start()
  call(methods.backend_start)
end

--- Stops the running answer if there is one; otherwise releases the backend
--- (`sage/backend/stop`), which lets a model service this session holds stop.
function M.stop()
  if not chat.cancel() then
    call(methods.backend_stop)
  end
end

return M
