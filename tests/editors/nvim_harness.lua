-- Helpers for the Neovim scenarios of test_nvim.py. A scenario runs inside H.run(), which writes
-- H.result (plus `error` when the scenario failed) as JSON to $SAGE_TEST_RESULT and quits.
local H = { result = {} }

--- The plugin configured as the test asked: $SAGE_TEST_SETUP holds the setup() options.
function H.setup()
  require('sage').setup(vim.json.decode(vim.env.SAGE_TEST_SETUP))
end

--- Waits until `condition()` is true; fails the scenario after `ms` milliseconds.
---@param ms integer
---@param condition fun(): boolean
---@param what string
function H.wait(ms, condition, what)
  if not vim.wait(ms, condition, 10) then
    error('timed out waiting for ' .. what, 2)
  end
end

--- Edits `path` and waits until the sage client is attached to its buffer.
---@param path string
function H.edit(path)
  vim.cmd.edit(path)
  H.wait(15000, function()
    return #vim.lsp.get_clients({ bufnr = 0, name = 'sage' }) > 0
  end, 'the sage client attached to ' .. path)
end

---@return integer
function H.chat_buf()
  return vim.fn.bufnr('sage://chat')
end

--- The chat transcript as one string.
---@return string
function H.chat_text()
  return table.concat(vim.api.nvim_buf_get_lines(H.chat_buf(), 0, -1, false), '\n')
end

--- A condition: `count` answers are in the transcript (once there is one) and none is being
--- written.
---@param count integer
---@return fun(): boolean
function H.answers_ended(count)
  return function()
    if H.chat_buf() == -1 then
      return false
    end
    local _, answers = H.chat_text():gsub('\n## Sage\n', '')
    return answers == count and not require('sage.chat').answering()
  end
end

--- The chat's conversation as the server keeps it (`sage/chat/history`).
---@return {messages: {role: string, content: string}[]}
function H.history()
  local client = require('sage.client')
  local params = { chatId = require('sage.chat').chat_id() }
  return client.request_sync(assert(client.current()), 'sage/chat/history', params, 5000)
end

--- Records the transcript after every sage/chatChunk the chat handled, in H.result.steps.
function H.record_chunks()
  H.result.steps = {}
  local chat = require('sage.chat')
  local on_chunk = chat.on_chunk
  chat.on_chunk = function(params)
    on_chunk(params)
    table.insert(H.result.steps, H.chat_text())
  end
end

--- Records every vim.notify message in H.result.notes as {message, level}.
function H.record_notes()
  H.result.notes = {}
  vim.notify = function(message, level)
    table.insert(H.result.notes, { message = message, level = level or vim.log.levels.INFO })
  end
end

--- Resumes the running scenario (set by H.run).
---@type fun()
local resume

--- Runs `scenario` in a coroutine, then writes the result file and quits (`qa!` unless the
--- scenario quit itself). The scenario may H.pause().
---@param scenario fun()
function H.run(scenario)
  local co = coroutine.create(scenario)
  resume = function()
    local ok, err = coroutine.resume(co)
    if ok and coroutine.status(co) == 'suspended' then
      return -- paused
    end
    if not ok then
      H.result.error = debug.traceback(co, err)
      if H.chat_buf() ~= -1 then
        H.result.chat = H.chat_text()
      end
    end
    H.write_result()
    vim.cmd('qa!')
  end
  resume()
end

--- Hands control back to Neovim's main loop for `ms` milliseconds, where it handles the keys
--- fed (vim.wait does not): insert mode, with its autocommands and mappings, runs only there.
---@param ms integer
function H.pause(ms)
  vim.defer_fn(resume, ms)
  coroutine.yield()
end

--- Writes H.result, with the messages Neovim showed, to $SAGE_TEST_RESULT.
function H.write_result()
  H.result.messages = vim.fn.execute('messages')
  local file = assert(io.open(vim.env.SAGE_TEST_RESULT, 'w'))
  file:write(vim.json.encode(H.result))
  file:close()
end

return H
