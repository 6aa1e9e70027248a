--- sage-lsp for Neovim: chat with a code model, ask about code, have it explained or fixed,
--- ghost text from the model, build pipeline plans.
local M = {}

--- Configures the plugin, defines its commands and attaches the server to code buffers.
---@param opts? table Partial |sage.Options|: cmd, settings, keymaps, chat, attach.
function M.setup(opts)
  opts = opts or {}
  require('sage.config').set(opts)
  require('sage.client').configure(opts)
  require('sage.commands').create()
  require('sage.editor').setup()
end

--- The backend's state for a statusline, e.g. `sage: ready (mock)`; empty before any status.
---@return string
function M.status()
  return require('sage.status').statusline()
end

return M
