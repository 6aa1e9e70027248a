--- The chat: a transcript buffer that streams answers and an input buffer below it.
local client = require('sage.client')
local config = require('sage.config')
local context = require('sage.context')
local methods = require('sage.methods')

local M = {}

local HEADER = '# sage chat'

--- Stands where the answer will be until its first part arrives.
local WAITING = '…'

---@class sage.RunningTurn
---@field client? vim.lsp.Client
---@field request_id? integer
---@field turn? integer The turn's number, from its first chunk.
---@field parts string[] The answer so far, in the pieces that arrived.
---@field first integer 0-based line of the transcript where the answer starts.
---@field last? integer 0-based line where the shown answer ends; nil while `…` stands there.
---@field col? integer The length in bytes of line `last`, where the next piece goes.
---@field attached? integer 0-based line of the transcript that names the attached context.

---@class sage.ChatState
---@field buf? integer The transcript buffer.
---@field input? integer The input buffer.
---@field chat_id string The conversation's id; the server starts it on first use.
---@field turns integer The number of the last turn that ended.
---@field running? sage.RunningTurn
local state = { chat_id = '', turns = 0 }

---@return string
local function new_chat_id()
  return ('nvim-%x'):format(vim.uv.hrtime())
end

--- Runs `change` on the transcript (made modifiable for it) and scrolls the other windows
--- that show the transcript to its end.
---@param change fun(buf: integer)
local function edit(change)
  local buf = assert(state.buf)
  vim.bo[buf].modifiable = true
  change(buf)
  vim.bo[buf].modifiable = false
  local count = vim.api.nvim_buf_line_count(buf)
  for _, win in ipairs(vim.fn.win_findbuf(buf)) do
    if win ~= vim.api.nvim_get_current_win() then
      vim.api.nvim_win_set_cursor(win, { count, 0 })
    end
  end
end

--- Replaces lines `first`..`last` (0-based, end-exclusive, -1: the end) of the transcript.
---@param first integer
---@param last integer
---@param lines string[]
local function write(first, last, lines)
  edit(function(buf)
    vim.api.nvim_buf_set_lines(buf, first, last, false, lines)
  end)
end

---@param lines string[]
local function append(lines)
  write(-1, -1, lines)
end

---@param text string
---@return string[]
local function split(text)
  return vim.split(text, '\n', { plain = true })
end

local function header_lines()
  local keys = config.options.keymaps
  return {
    HEADER,
    ('_%s sends the input below · %s stops the answer · %s closes_'):format(
      keys.send or ':SageChat {question}',
      keys.cancel or ':SageStop',
      keys.close or ':close'
    ),
    '',
  }
end

---@param buf integer
---@param mode string|string[]
---@param lhs string|false
---@param rhs function
---@param desc string
local function map(buf, mode, lhs, rhs, desc)
  if lhs then
    vim.keymap.set(mode, lhs, rhs, { buffer = buf, nowait = true, silent = true, desc = desc })
  end
end

--- Sends what the input buffer holds and empties it.
local function send_input()
  local lines = vim.api.nvim_buf_get_lines(assert(state.input), 0, -1, false)
  local message = vim.trim(table.concat(lines, '\n'))
  if message == '' then
    vim.notify('sage: type a question in the input window first', vim.log.levels.WARN)
    return
  end
  vim.api.nvim_buf_set_lines(state.input, 0, -1, false, {})
  M.send(message)
end

--- Closes the windows that show the chat.
local function close()
  for _, buf in ipairs({ state.buf, state.input }) do
    for _, win in ipairs(vim.fn.win_findbuf(buf)) do
      pcall(vim.api.nvim_win_close, win, false)
    end
  end
end

---@param name string
---@return integer
local function scratch(name)
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_name(buf, name)
  vim.bo[buf].bufhidden = 'hide'
  vim.bo[buf].filetype = 'markdown'
  local keys = config.options.keymaps
  map(buf, 'n', keys.send, send_input, 'sage: send the input')
  map(buf, 'n', keys.cancel, M.cancel, 'sage: stop the answer')
  map(buf, 'n', keys.close, close, 'sage: close the chat')
  return buf
end

--- Starts a new conversation: a new chat id, no turns yet, and a transcript (if there is
--- one) that holds only the header.
local function new_conversation()
  state.chat_id = new_chat_id()
  state.turns = 0
  state.running = nil
  if state.buf and vim.api.nvim_buf_is_valid(state.buf) then
    write(0, -1, header_lines())
  end
end

local function ensure_buffers()
  if not (state.buf and vim.api.nvim_buf_is_valid(state.buf)) then
    state.buf = scratch('sage://chat')
    new_conversation()
  end
  if not (state.input and vim.api.nvim_buf_is_valid(state.input)) then
    state.input = scratch('sage://input')
  end
end

---@param win integer
local function set_text_options(win)
  vim.wo[win].wrap = true
  vim.wo[win].linebreak = true
  vim.wo[win].number = false
  vim.wo[win].relativenumber = false
end

--- Opens the chat windows (the layout of `setup()`), or focuses them, and the input window.
function M.open()
  ensure_buffers()
  local shown = vim.fn.win_findbuf(state.buf)[1]
  if not shown then
    local layout = config.options.chat
    if layout.layout == 'tab' then
      vim.cmd('tab sbuffer ' .. state.buf)
    elseif layout.layout == 'split' then
      vim.cmd(('botright %dsplit | buffer %d'):format(layout.height, state.buf))
    else
      vim.cmd(('botright vertical %dsplit | buffer %d'):format(layout.width, state.buf))
    end
    shown = vim.api.nvim_get_current_win()
    set_text_options(shown)
    vim.api.nvim_win_set_cursor(shown, { vim.api.nvim_buf_line_count(state.buf), 0 })
  end
  local input_win = vim.fn.win_findbuf(state.input)[1]
  if not input_win then
    vim.api.nvim_set_current_win(shown)
    vim.cmd(
      ('belowright %dsplit | buffer %d'):format(config.options.chat.input_height, state.input)
    )
    input_win = vim.api.nvim_get_current_win()
    set_text_options(input_win)
    vim.wo[input_win].winfixheight = true
  end
  vim.api.nvim_set_current_win(input_win)
end

--- Starts a new conversation in an empty transcript (`:SageChat!`).
function M.reset()
  M.cancel()
  new_conversation()
end

--- Adds `delta` to the answer shown, touching only the answer's end: its first piece goes at
--- the end of the answer's last line, the pieces after it on new lines. While nothing of the
--- answer is shown yet, the pieces replace the `…`.
---@param running sage.RunningTurn
---@param delta string
local function show_delta(running, delta)
  local pieces = split(delta)
  local last, col = running.last, running.col
  if not last then
    write(running.first, -1, pieces)
    last, col = running.first, 0
  else
    edit(function(buf)
      vim.api.nvim_buf_set_text(buf, last, col, last, col, pieces)
    end)
  end
  running.last = last + #pieces - 1
  running.col = #pieces == 1 and col + #pieces[1] or #pieces[#pieces]
end

--- Ends the running turn: the answer that arrived, a blank line, then `lines`.
---@param lines string[]
local function end_turn(lines)
  local running = assert(state.running)
  state.turns = math.max(state.turns, running.turn or 0)
  state.running = nil
  local text = table.concat(running.parts)
  local shown = text == '' and {} or split(text)
  if #shown > 0 and #lines > 0 then
    table.insert(shown, '')
  end
  write(running.first, -1, vim.list_extend(vim.list_extend(shown, lines), { '' }))
end

---@param result table The result of `sage/chat`.
local function finish(result)
  local running = assert(state.running)
  running.parts = { result.text }
  running.turn = result.turn
  if running.attached and type(result.context) == 'table' then
    -- the server's account: what the model saw, marked where it was shortened
    write(running.attached, running.attached + 1, { context.attached(result.context) })
  end
  local lines = {}
  if result.finishReason == 'length' then
    table.insert(lines, '_[cut at the token limit]_')
  end
  if result.sources and #result.sources > 0 then
    table.insert(lines, '**Sources**')
    for _, source in ipairs(result.sources) do
      local heading = source.heading ~= vim.NIL and source.heading or ''
      -- The document's own file when the server sends its URI (so `gf` opens it), shortened
      -- to the working directory or ~; else the path inside the indexed folder.
      local uri = source.uri ~= vim.NIL and source.uri or nil
      local path = uri and vim.fn.fnamemodify(vim.uri_to_fname(uri), ':~:.') or source.path
      local where = heading ~= '' and (path .. ' § ' .. heading) or path
      table.insert(lines, ('- [%d] %s — %s'):format(source.n, source.title, where))
    end
  end
  end_turn(lines)
end

--- Asks `message` in the chat's conversation and streams the answer into the transcript.
--- `refs` (the protocol's `ContextRef`s, see `sage.context`) attach editor documents or ranges
--- of them: the transcript names them under the question.
---@param message string
---@param refs? table[]
function M.send(message, refs)
  M.open()
  if state.running then
    vim.notify('sage: an answer is still being written; stop it first', vim.log.levels.WARN)
    return
  end
  append({ '## You', '' })
  append(split(message))
  local attached = nil
  if refs and #refs > 0 then
    append({ '' })
    attached = vim.api.nvim_buf_line_count(state.buf)
    append({ context.attached(refs) })
  end
  append({ '', '## Sage', '' })
  ---@type sage.RunningTurn
  local running =
    { parts = {}, first = vim.api.nvim_buf_line_count(state.buf), attached = attached }
  append({ WAITING })
  state.running = running
  local params = { message = message, chatId = state.chat_id, context = attached and refs }
  client.with_client(function(c)
    if state.running ~= running then
      return -- stopped while the server was starting
    end
    if not c then
      end_turn({ '[error] the server did not start; see :checkhealth sage' })
      return
    end
    running.client = c
    running.request_id = client.request(c, methods.chat, params, function(err, result)
      if state.running ~= running then
        return
      end
      if err then
        end_turn({ '[error] ' .. client.error_line(err) })
      else
        finish(result)
      end
    end)
    if not running.request_id then
      end_turn({ '[error] the server has stopped; :SageChat starts it again' })
    end
  end)
end

--- Handles `sage/chatChunk`: appends the delta to the running answer. A chunk with index 0
--- starts the answer afresh (rewriting what was shown of it), so late chunks of a stopped turn
--- never mix into the next one.
---@param params {chatId: string, turn: integer, index: integer, delta: string}
function M.on_chunk(params)
  local running = state.running
  if not running or params.chatId ~= state.chat_id or params.turn <= state.turns then
    return
  end
  if params.index == 0 then
    running.turn = params.turn
    running.parts = {}
    running.last = nil
  elseif params.turn ~= running.turn then
    return
  end
  table.insert(running.parts, params.delta)
  show_delta(running, params.delta)
end

--- Stops the running answer (`$/cancelRequest`); the part that arrived stays, marked
--- `[cancelled]`, and the server keeps it in the conversation's history.
---@return boolean stopped false when no answer was running.
function M.cancel()
  local running = state.running
  if not running then
    return false
  end
  if running.request_id then
    client.cancel(assert(running.client), running.request_id)
  end
  end_turn({ '[cancelled]' })
  return true
end

--- True while an answer is being written.
---@return boolean
function M.answering()
  return state.running ~= nil
end

--- The id of the chat's conversation (for `sage/chat/history`).
---@return string
function M.chat_id()
  return state.chat_id
end

return M
