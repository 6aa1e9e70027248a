--- sage-lsp for Neovim: chat with a code model, ask about code, build pipeline plans.
local M = {}

--- Configures the plugin and defines its commands.
---@param opts? table Partial |sage.Options|: cmd, settings, keymaps, chat.
function M.setup(opts)
  opts = opts or {}
  require('sage.config').set(opts)
  require('sage.client').configure(opts)
  require('sage.commands').create()
end

--- The backend's state for a statusline, e.g. `sage: ready (mock)`; empty before any status.
---@return string
function M.status()
  return require('sage.status').statusline()
end

return M
