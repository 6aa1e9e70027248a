--- The backend's latest state, from `sage/status/didChange` and `sage/backend/*` results.
local M = {}

---@class sage.Status
---@field state "idle"|"starting"|"ready"|"error"
---@field backend string
---@field model string|nil
---@field message string|nil
---@field endpoint string|nil
---@field service table|nil

---@type sage.Status?
local latest

--- Keeps a status, fires `User SageStatus` and shows an error state. The params of
--- `sage/status/didChange` and the results of `sage/backend/*` both fit.
---@param status table
---@return sage.Status kept The status as kept (what `get()` returns now).
function M.update(status)
  local changed_to_error = status.state == 'error' and (latest == nil or latest.state ~= 'error')
  latest = {
    state = status.state,
    backend = status.backend,
    model = status.model ~= vim.NIL and status.model or nil,
    message = status.message,
    endpoint = status.endpoint,
    service = status.service,
  }
  if changed_to_error then
    vim.notify('sage: ' .. (status.message or 'backend error'), vim.log.levels.ERROR)
  end
  vim.api.nvim_exec_autocmds('User', { pattern = 'SageStatus', modeline = false })
  return latest
end

--- The latest status, or nil before the server reported one.
---@return sage.Status?
function M.get()
  return latest
end

--- A short text for a statusline, e.g. `sage: ready (mock)`; empty before any status.
---@return string
function M.statusline()
  if not latest then
    return ''
  end
  local what = latest.model or latest.backend
  return ('sage: %s (%s)'):format(latest.state, what)
end

--- The status in a few lines, as `:SageStatus` shows it.
---@param status sage.Status
---@return string
function M.describe(status)
  local lines = {
    ('sage: %s — backend %s, model %s'):format(
      status.state,
      status.backend,
      status.model or 'not known yet'
    ),
  }
  if status.endpoint then
    table.insert(lines, 'endpoint: ' .. status.endpoint)
  end
  local service = status.service
  if service then
    table.insert(
      lines,
      ('service: %s on port %s (pid %s, %s holder(s))'):format(
        service.name,
        service.port,
        service.pid,
        service.holders
      )
    )
  end
  if status.message then
    table.insert(lines, status.message)
  end
  return table.concat(lines, '\n')
end

return M
