--- `:checkhealth sage`.
local client = require('sage.client')
local methods = require('sage.methods')
local status = require('sage.status')

local M = {}

local HANDSHAKE_TIMEOUT_MS = 15000

---@param message table
---@return string
local function frame(message)
  local body = vim.json.encode(message)
  return ('Content-Length: %d\r\n\r\n%s'):format(#body, body)
end

--- The JSON bodies of LSP-framed output.
---@param output string
---@return table[]
local function unframe(output)
  local messages, pos = {}, 1
  while true do
    local header_end = output:find('\r\n\r\n', pos, true)
    if not header_end then
      return messages
    end
    local length = tonumber(output:sub(pos, header_end):match('Content%-Length: *(%d+)'))
    if not length then
      return messages
    end
    local body = output:sub(header_end + 4, header_end + 3 + length)
    table.insert(messages, vim.json.decode(body))
    pos = header_end + 4 + length
  end
end

--- Runs `cmd` as a fresh server through initialize, shutdown and exit.
---@param cmd string[]
---@return table? initialize_result
---@return string? problem
local function handshake(cmd)
  local input = frame({
    jsonrpc = '2.0',
    id = 1,
    method = 'initialize',
    params = { processId = vim.NIL, rootUri = vim.NIL, capabilities = vim.empty_dict() },
  }) .. frame({ jsonrpc = '2.0', id = 2, method = 'shutdown' }) .. frame({
    jsonrpc = '2.0',
    method = 'exit',
  })
  local ok, process = pcall(vim.system, cmd, { stdin = input })
  if not ok then
    return nil, tostring(process)
  end
  local done = process:wait(HANDSHAKE_TIMEOUT_MS)
  for _, message in ipairs(unframe(done.stdout or '')) do
    if message.id == 1 then
      return message.result, message.error and message.error.message
    end
  end
  return nil,
    ('no answer to initialize (exit code %s): %s'):format(done.code, vim.trim(done.stderr or ''))
end

---@param cmd string[]
local function check_server(cmd)
  local result, problem = handshake(cmd)
  if not result then
    vim.health.error('the server did not answer initialize: ' .. (problem or '?'))
    return
  end
  local sage = vim.tbl_get(result, 'capabilities', 'experimental', 'sage') or {}
  if sage.version == 1 then
    local info = result.serverInfo or {}
    vim.health.ok(
      ('%s %s answers initialize: protocol version 1, %d sage methods'):format(
        info.name or 'the server',
        info.version or '',
        #(sage.methods or {})
      )
    )
  else
    vim.health.error(
      ('the server speaks sage protocol version %s; this plugin needs 1'):format(sage.version)
    )
  end
end

local function check_backend()
  local running = client.current()
  if not running then
    vim.health.info('no sage server is running in this Neovim: :SageChat or :SageStart starts one')
    return
  end
  local result = client.request_sync(running, methods.backend_status, nil, 5000)
  if not result then
    vim.health.warn('the running server did not answer ' .. methods.backend_status)
    return
  end
  local text = status.describe(status.update(result)):gsub('\n', '; ')
  if result.state == 'error' then
    vim.health.error(text)
  else
    vim.health.ok(text)
  end
end

function M.check()
  vim.health.start('sage')
  if vim.fn.has('nvim-0.10') == 1 then
    vim.health.ok('Neovim ' .. tostring(vim.version()))
  else
    vim.health.error('Neovim 0.10 or newer is needed')
  end
  if vim.fn.has('nvim-0.12') == 1 then
    vim.health.ok('ghost text: vim.lsp.inline_completion is there')
  else
    vim.health.info('ghost text needs Neovim 0.12 (vim.lsp.inline_completion); the rest works')
  end
  local cmd = client.effective_config().cmd
  if type(cmd) ~= 'table' or vim.fn.executable(cmd[1]) ~= 1 then
    vim.health.error(
      ('the server command %s is not executable'):format(vim.inspect(cmd)),
      { 'pip install sage-lsp, or set cmd in require("sage").setup()' }
    )
    return
  end
  vim.health.ok('server command: ' .. table.concat(cmd, ' '))
  check_server(cmd)
  vim.health.start('sage backend')
  check_backend()
end

return M
