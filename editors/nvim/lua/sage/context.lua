--- Editor context for `sage/chat`: references to a buffer's lines (the server reads the text
--- from its synced copy) with the diagnostics shown there, and the line of the chat that says
--- what the model saw.
local M = {}

--- The LSP position of byte `col` of line `row` (0-based) of `buf`, in `encoding`; a row or
--- column past the buffer's end is taken as its end.
---@param buf integer
---@param row integer
---@param col integer
---@param encoding string
---@return lsp.Position
local function position(buf, row, col, encoding)
  row = math.max(0, math.min(row, vim.api.nvim_buf_line_count(buf) - 1))
  local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, true)[1]
  col = math.max(0, math.min(col, #line))
  local character = col > 0 and vim.lsp.util.character_offset(buf, row, col, encoding) or 0
  return { line = row, character = character }
end

--- The diagnostics of every source on lines `first`..`last` (0-based, inclusive) of `buf`, as
--- LSP Diagnostics in `encoding`.
---@param buf integer
---@param first integer
---@param last integer
---@param encoding string
---@return lsp.Diagnostic[]
local function diagnostics(buf, first, last, encoding)
  local found = {}
  for _, d in ipairs(vim.diagnostic.get(buf)) do
    local end_lnum = d.end_lnum or d.lnum
    if d.lnum <= last and end_lnum >= first then
      table.insert(found, {
        range = {
          start = position(buf, d.lnum, d.col, encoding),
          ['end'] = position(buf, end_lnum, d.end_col or d.col, encoding),
        },
        severity = d.severity, -- vim.diagnostic.severity numbers are LSP's
        message = d.message,
        source = d.source,
        code = d.code,
      })
    end
  end
  return found
end

--- A reference to lines `line1`..`line2` (1-based, inclusive) of `buf`: its URI, the range
--- from the first line's start to the last line's end in `encoding` (the client's negotiated
--- position encoding), and the diagnostics shown on those lines.
---@param buf integer
---@param line1 integer
---@param line2 integer
---@param encoding string
---@return table ref A `ContextRef` of the protocol.
function M.lines(buf, line1, line2, encoding)
  local last = vim.api.nvim_buf_get_lines(buf, line2 - 1, line2, true)[1]
  local ref = {
    uri = vim.uri_from_bufnr(buf),
    range = {
      start = { line = line1 - 1, character = 0 },
      ['end'] = position(buf, line2 - 1, #last, encoding),
    },
  }
  local found = diagnostics(buf, line1 - 1, line2 - 1, encoding)
  if #found > 0 then -- an empty table would be sent as an object
    ref.diagnostics = found
  end
  return ref
end

--- `path:first-last` of a reference (the path relative to the working directory or ~, the
--- lines 1-based; the path alone for a whole document); `(truncated)` after it when the server
--- shortened it.
---@param ref {uri: string, range?: lsp.Range, truncated?: boolean}
---@return string
local function label(ref)
  local path = vim.fn.fnamemodify(vim.uri_to_fname(ref.uri), ':~:.')
  local range = ref.range ~= vim.NIL and ref.range or nil
  if range then
    local first, last = range.start.line + 1, range['end'].line + 1
    if range['end'].character == 0 and last > first then
      last = last - 1 -- a range that ends at a line's start does not take that line
    end
    path = first == last and ('%s:%d'):format(path, first) or ('%s:%d-%d'):format(path, first, last)
  end
  return '`' .. path .. '`' .. (ref.truncated == true and ' (truncated)' or '')
end

--- The chat line that names what was attached to a question, e.g.
--- ``Attached: `calc.py:2-3`, `util.py` (truncated)``.
---@param refs table[] The `context` of the params or of the result of `sage/chat`.
---@return string
function M.attached(refs)
  return 'Attached: ' .. table.concat(vim.tbl_map(label, refs), ', ')
end

return M
