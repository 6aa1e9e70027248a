--- The user commands.
local backend = require('sage.backend')
local chat = require('sage.chat')
local context = require('sage.context')
local editor = require('sage.editor')
local pipeline = require('sage.pipeline')

local M = {}

--- The question and the selected lines of `buf` pasted as a fenced block with the buffer's
--- filetype: for a buffer without a file, which the server cannot refer to.
---@param question string
---@param buf integer
---@param opts vim.api.keyset.create_user_command.command_args
---@return string
local function ask_message(question, buf, opts)
  local lines = vim.api.nvim_buf_get_lines(buf, opts.line1 - 1, opts.line2, false)
  local fenced = ('```%s\n%s\n```'):format(vim.bo[buf].filetype, table.concat(lines, '\n'))
  return question .. '\n\n' .. fenced
end

--- `:SageAsk`: the question with a reference to the lines (the server reads them from its
--- synced copy of the buffer, which this attaches), or with the lines pasted for a buffer
--- without a file.
---@param opts vim.api.keyset.create_user_command.command_args
local function ask(opts)
  local buf = vim.api.nvim_get_current_buf()
  local function send(question)
    if not question or vim.trim(question) == '' then
      return
    end
    if vim.api.nvim_buf_get_name(buf) == '' then
      chat.send(ask_message(question, buf, opts))
      return
    end
    chat.open() -- at once, while the server may still be starting
    editor.attach(buf, function(c)
      if c then
        chat.send(question, { context.lines(buf, opts.line1, opts.line2, c.offset_encoding) })
      end
    end)
  end
  if opts.args ~= '' then
    send(opts.args)
  else
    vim.ui.input({ prompt = 'Ask sage about the selection: ' }, send)
  end
end

--- Defines :SageChat, :SageAsk, :SagePipeline, :SageStatus, :SageStart and :SageStop.
function M.create()
  local command = vim.api.nvim_create_user_command
  command('SageChat', function(opts)
    if opts.bang then
      chat.reset()
    end
    if opts.args ~= '' then
      chat.send(opts.args)
    else
      chat.open()
    end
  end, { nargs = '*', bang = true, desc = 'sage: open the chat, or ask {question} in it' })
  command('SageAsk', ask, {
    nargs = '*',
    range = true,
    desc = 'sage: ask about the selected lines',
  })
  command('SagePipeline', function(opts)
    pipeline.build(opts.args)
  end, { nargs = '+', desc = 'sage: write a pipeline plan for DESCRIPTION' })
  command('SageStatus', backend.status, { desc = "sage: show the backend's state" })
  command('SageStart', backend.start, { desc = 'sage: prepare the backend now' })
  command('SageStop', backend.stop, {
    desc = 'sage: stop the answer, or release the backend',
  })
end

return M
