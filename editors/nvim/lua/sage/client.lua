--- The sage-lsp client: its configuration, starting it once, requests, and a clean stop when
--- Neovim exits.
local config = require('sage.config')
local methods = require('sage.methods')

local M = {}

M.name = 'sage'

local has_011 = vim.fn.has('nvim-0.11') == 1

--- How long Neovim waits on exit for the server process to end, in milliseconds.
local EXIT_WAIT_MS = 3000

--- Ids of the clients whose server process has not exited yet.
---@type table<integer, true>
local running = {}

--- Id of the client this plugin started that is not initialized yet.
---@type integer?
local starting

--- Callbacks waiting for an initialized client.
---@type fun(client: vim.lsp.Client?)[]
local waiting = {}

--- Calls the waiting callbacks with `client` (nil: the server did not start).
---@param client vim.lsp.Client?
local function release_waiting(client)
  local callbacks = waiting
  waiting = {}
  for _, callback in ipairs(callbacks) do
    callback(client)
  end
end

--- Reports that the server did not start and lets the waiting callbacks know.
---@param why string
local function start_failed(why)
  starting = nil
  vim.notify('sage: the server did not start: ' .. why, vim.log.levels.ERROR)
  release_waiting(nil)
end

--- Calls a client method: `client:name(...)` on 0.11+, `client.name(...)` on 0.10.
---@param client vim.lsp.Client
---@param name string
---@return any
local function invoke(client, name, ...)
  if has_011 then
    return client[name](client, ...)
  end
  return client[name](...)
end

--- Waits (bounded) until every sage server process has exited. vim.lsp's own VimLeavePre
--- handler, registered when vim.lsp loaded and so before this one, has already sent them
--- `shutdown` (then `exit`); a client it missed is stopped here.
local function wait_for_exit()
  for id in pairs(running) do
    local client = vim.lsp.get_client_by_id(id)
    if client and not invoke(client, 'is_stopped') then
      invoke(client, 'stop')
    end
  end
  vim.wait(EXIT_WAIT_MS, function()
    return next(running) == nil
  end, 10)
end

---@param client vim.lsp.Client
local function on_init(client)
  running[client.id] = true
  if starting == client.id then
    starting = nil
  end
  vim.api.nvim_create_autocmd('VimLeavePre', {
    group = vim.api.nvim_create_augroup('sage_exit', { clear = true }),
    desc = 'sage: wait for the server to shut down',
    callback = wait_for_exit,
  })
  release_waiting(client)
end

---@param code integer
---@param signal integer
---@param client_id integer
local function on_exit(code, signal, client_id)
  running[client_id] = nil
  if starting == client_id then
    vim.schedule(function()
      start_failed(
        ('it exited with code %d, signal %d; see :checkhealth sage'):format(code, signal)
      )
    end)
  end
end

--- The client configuration for `opts`: name, command, settings (sent as `init_options` and
--- answered to `workspace/configuration` under the `sage` section) and the sage handlers.
---@param opts sage.Options
---@return vim.lsp.ClientConfig
function M.lsp_config(opts)
  local settings = next(opts.settings) and opts.settings or vim.empty_dict()
  return {
    name = M.name,
    cmd = opts.cmd,
    init_options = settings,
    settings = { sage = settings },
    handlers = {
      [methods.chat_chunk] = function(_, params)
        require('sage.chat').on_chunk(params)
      end,
      [methods.status_did_change] = function(_, params)
        require('sage.status').update(params)
      end,
    },
    on_init = on_init,
    on_exit = on_exit,
  }
end

--- Records the options given to `setup()`. On 0.11+ they go into `vim.lsp.config('sage')`,
--- over the plugin's `lsp/sage.lua`, so both ways of configuring start the same server.
---@param opts table What the user passed to `setup()`.
function M.configure(opts)
  if not has_011 then
    return
  end
  local overrides = M.lsp_config(config.options)
  vim.lsp.config(M.name, {
    cmd = opts.cmd and overrides.cmd,
    init_options = opts.settings and overrides.init_options,
    settings = opts.settings and overrides.settings,
  })
end

--- The running sage client: the one this plugin started or one `vim.lsp.enable('sage')` did.
---@return vim.lsp.Client?
function M.current()
  for _, client in ipairs(vim.lsp.get_clients({ name = M.name })) do
    if client.initialized and not invoke(client, 'is_stopped') then
      return client
    end
  end
end

--- The server configuration in effect, a copy the caller may change: on 0.11+
--- `vim.lsp.config('sage')` (the plugin's `lsp/sage.lua`, the user's and `setup()`'s settings
--- merged), else the one built from the options of `setup()`.
---@return vim.lsp.ClientConfig
function M.effective_config()
  if has_011 and vim.lsp.config[M.name] then
    return vim.deepcopy(vim.lsp.config[M.name])
  end
  return M.lsp_config(config.options)
end

--- Starts the server (without attaching it to a buffer) unless it runs or is starting.
local function start()
  if starting then
    return
  end
  local cfg = M.effective_config()
  local function launch()
    if has_011 then
      return vim.lsp.start(cfg, { attach = false })
    end
    return vim.lsp.start_client(cfg)
  end
  if type(cfg.root_dir) ~= 'string' then
    cfg.root_dir = vim.fn.getcwd()
  end
  local ok, id = pcall(launch)
  if not (ok and id) then
    start_failed(('%s (%s)'):format(table.concat(cfg.cmd, ' '), id or 'not started'))
    return
  end
  starting = id
end

--- Calls `fn` with an initialized client, starting the server first when none runs; with nil
--- when the server did not start (that is already reported).
---@param fn fun(client: vim.lsp.Client?)
function M.with_client(fn)
  local client = M.current()
  if client then
    fn(client)
    return
  end
  table.insert(waiting, fn)
  start()
end

--- Sends a request; the changes of every attached buffer not sent yet go first, so the server
--- reads context from the text the user sees.
---@param client vim.lsp.Client
---@param method string
---@param params table|nil
---@param handler fun(err: lsp.ResponseError?, result: any)
---@return integer? request_id nil when the client has shut down.
function M.request(client, method, params, handler)
  local ok, id = invoke(client, 'request', method, params or vim.empty_dict(), handler, nil)
  return ok and id or nil
end

--- Sends a request and waits for its result.
---@param c vim.lsp.Client
---@param method string
---@param params table|nil
---@param timeout_ms integer
---@return any result nil on an error or a timeout.
function M.request_sync(c, method, params, timeout_ms)
  local answer = invoke(c, 'request_sync', method, params or vim.empty_dict(), timeout_ms, 0)
  return answer and answer.result
end

--- Starts the server if needed and sends a request; `on_result` gets its result, and
--- `on_error` its error (default: shown with vim.notify).
---@param method string
---@param params table|nil
---@param on_result fun(result: any, client: vim.lsp.Client)
---@param on_error? fun(err: lsp.ResponseError)
function M.call(method, params, on_result, on_error)
  M.with_client(function(client)
    if not client then
      return
    end
    M.request(client, method, params, function(err, result)
      if err then
        (on_error or M.notify_error)(err)
      else
        on_result(result, client)
      end
    end)
  end)
end

--- Asks the server to stop a request (`$/cancelRequest`).
---@param client vim.lsp.Client
---@param request_id integer
function M.cancel(client, request_id)
  invoke(client, 'cancel_request', request_id)
end

--- One readable line for a JSON-RPC error.
---@param err lsp.ResponseError
---@return string
function M.error_line(err)
  return (tostring(err.message or err):gsub('%s*\n%s*', ' '))
end

--- Shows a JSON-RPC error.
---@param err lsp.ResponseError
function M.notify_error(err)
  vim.notify('sage: ' .. M.error_line(err), vim.log.levels.ERROR)
end

return M
