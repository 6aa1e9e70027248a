--- The sage client in code buffers: attaching it (so that the server holds the buffers' text,
--- unsaved changes included, and offers its code actions there), the client side of the
--- "Sage: explain" code action, and ghost text from the model (inline completion, Neovim 0.12+).
local chat = require('sage.chat')
local client = require('sage.client')
local config = require('sage.config')
local methods = require('sage.methods')

local M = {}

--- The question "Sage: explain" asks about its range.
M.EXPLAIN = 'Explain this code.'

--- Set while the last start of the server failed: buffers entered then do not try again (each
--- try would report the failure); the commands still do.
local gave_up = false

--- Whether `setup()`'s `attach` option takes `buf`: a buffer of a file, of a filetype the
--- option names unless it is `true`.
---@param buf integer
---@return boolean
local function wanted(buf)
  local attach = config.options.attach
  if not attach or vim.bo[buf].buftype ~= '' or vim.api.nvim_buf_get_name(buf) == '' then
    return false
  end
  return attach == true or vim.tbl_contains(attach, vim.bo[buf].filetype)
end

--- Attaches the sage client to `buf`, starting the server when none runs, then calls `fn` with
--- the client (nil when the server did not start; that is already reported).
---@param buf integer
---@param fn? fun(client: vim.lsp.Client?)
function M.attach(buf, fn)
  client.with_client(function(c)
    gave_up = c == nil
    if c and vim.api.nvim_buf_is_valid(buf) and not c.attached_buffers[buf] then
      vim.lsp.buf_attach_client(buf, c.id)
    end
    if fn then
      fn(c)
    end
  end)
end

---@param args vim.api.keyset.create_autocmd.callback_args
local function attach_wanted(args)
  if gave_up or not wanted(args.buf) then
    return
  end
  M.attach(args.buf)
end

--- Whether ghost text is on for client `c`: Neovim has `vim.lsp.inline_completion` (0.12), the
--- server offers `textDocument/inlineCompletion`, and the settings do not turn it off
--- (`completion = { enabled = false }`, which the server reads too).
---@param c vim.lsp.Client
---@return boolean
local function completes(c)
  return vim.fn.has('nvim-0.12') == 1
    and c:supports_method('textDocument/inlineCompletion')
    and vim.tbl_get(c.config.settings or {}, 'sage', 'completion', 'enabled') ~= false
end

--- Turns ghost text on in `buf` and maps the `accept` key there (insert mode): it accepts the
--- ghost text shown, and is itself when none is.
---@param buf integer
local function enable_completion(buf)
  vim.lsp.inline_completion.enable(true, { bufnr = buf })
  local key = config.options.keymaps.accept
  if key then
    vim.keymap.set('i', key, function()
      if not vim.lsp.inline_completion.get() then
        return key
      end
    end, { buffer = buf, expr = true, desc = 'sage: accept the ghost text' })
  end
end

---@param args vim.api.keyset.create_autocmd.callback_args
local function on_attach(args)
  local c = vim.lsp.get_client_by_id(args.data.client_id)
  if c and c.name == client.name and completes(c) then
    enable_completion(args.buf)
  end
end

--- Runs the "Sage: explain" code action (`sage.explain`, arguments `[ContextRef]`): the chat
--- explains the code it names.
---@param command lsp.Command
local function explain(command)
  chat.send(M.EXPLAIN, command.arguments)
end

--- Attaches the server to the buffers the `attach` option takes (those open now and those
--- entered later), turns ghost text on where the sage client attaches, and registers the
--- client command `sage.explain`.
function M.setup()
  vim.lsp.commands[methods.command_explain] = explain
  local group = vim.api.nvim_create_augroup('sage_editor', { clear = true })
  vim.api.nvim_create_autocmd('LspAttach', { group = group, callback = on_attach })
  vim.api.nvim_create_autocmd({ 'BufEnter', 'FileType' }, {
    group = group,
    callback = attach_wanted,
  })
  for _, c in ipairs(vim.lsp.get_clients({ name = client.name })) do
    for buf in pairs(c.attached_buffers) do
      on_attach({ buf = buf, data = { client_id = c.id } })
    end
  end
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) then
      attach_wanted({ buf = buf })
    end
  end
end

return M
