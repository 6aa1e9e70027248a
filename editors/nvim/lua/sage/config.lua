--- The plugin's options: the defaults and what `setup()` merged over them.
local M = {}

---@class sage.Keymaps
---@field send string|false Normal-mode key in the chat and input buffers that sends the input.
---@field cancel string|false Normal-mode key in the chat and input buffers that stops the answer.
---@field close string|false Normal-mode key in the chat and input buffers that closes the chat.
---@field accept string|false Insert-mode key in code buffers that accepts the ghost text; the
--- key's own meaning when none is shown.

---@class sage.ChatLayout
---@field layout "vsplit"|"split"|"tab" Where the chat window opens.
---@field width integer Width of a "vsplit" chat window.
---@field height integer Height of a "split" chat window.
---@field input_height integer Height of the input window below the chat window.

---@class sage.Options
---@field cmd string[] The server command.
---@field settings table<string, any> Protocol configuration (backend, model, baseUrl, …).
---@field keymaps sage.Keymaps
---@field chat sage.ChatLayout
---@field attach boolean|string[] The buffers the server attaches to (code actions, ghost text,
--- the synced text `:SageAsk` refers to): true every buffer of a file, a list only those
--- filetypes, false none (then only the buffers `:SageAsk` asks about).

---@type sage.Options
M.defaults = {
  cmd = { 'sage', 'lsp' },
  settings = {},
  keymaps = { send = '<CR>', cancel = '<C-c>', close = 'q', accept = '<Tab>' },
  chat = { layout = 'vsplit', width = 80, height = 20, input_height = 3 },
  attach = true,
}

---@type sage.Options
M.options = vim.deepcopy(M.defaults)

--- Merges `opts` over the defaults.
---@param opts? table Partial |sage.Options|.
function M.set(opts)
  opts = opts or {}
  M.options = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts)
  -- A list is replaced, not merged item by item: { 'sage-lsp' } must not keep 'lsp'.
  M.options.cmd = opts.cmd or M.defaults.cmd
end

return M
