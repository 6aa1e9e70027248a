--- `:SagePipeline`: asks the server for a pipeline plan and writes it under `pipelines/`.
local client = require('sage.client')
local methods = require('sage.methods')

local M = {}

--- The plan's name: the description's first words as a slug.
---@param description string
---@return string
local function slug(description)
  local words = {}
  for word in description:lower():gmatch('%w+') do
    table.insert(words, word)
    if #words == 5 then
      break
    end
  end
  return #words > 0 and table.concat(words, '-') or 'pipeline'
end

--- A path `pipelines/<name>[-N].sage.yaml` under the working directory that does not exist.
---@param name string
---@return string
local function free_path(name)
  local dir = vim.fs.joinpath(vim.fn.getcwd(), 'pipelines')
  local path = vim.fs.joinpath(dir, name .. '.sage.yaml')
  local n = 1
  while vim.uv.fs_stat(path) do
    n = n + 1
    path = vim.fs.joinpath(dir, ('%s-%d.sage.yaml'):format(name, n))
  end
  return path
end

---@param err lsp.ResponseError
local function show_failure(err)
  local data = err.data ~= vim.NIL and err.data or nil
  if err.code == -32004 and data and data.errors then
    local lines = { ('sage: no valid pipeline plan after %s attempts:'):format(data.attempts) }
    for _, problem in ipairs(data.errors) do
      table.insert(lines, '  ' .. problem)
    end
    vim.notify(table.concat(lines, '\n'), vim.log.levels.ERROR)
  else
    client.notify_error(err)
  end
end

--- Builds a plan for `description` (`sage/buildPipeline`), applies the returned edit that
--- creates the file, saves it and opens it.
---@param description string
function M.build(description)
  local name = slug(description)
  local path = free_path(name)
  local params = { description = description, name = name, targetUri = vim.uri_from_fname(path) }
  vim.notify('sage: designing the pipeline…', vim.log.levels.INFO)
  client.call(methods.build_pipeline, params, function(result, c)
    -- The edit's create (ignoreIfExists false) makes the folder and the file.
    vim.lsp.util.apply_workspace_edit(result.edit, c.offset_encoding)
    vim.cmd.edit(vim.fn.fnameescape(path))
    vim.cmd('silent write')
    local warnings = #result.errors > 0 and (' (' .. table.concat(result.errors, '; ') .. ')') or ''
    vim.notify(
      ('sage: wrote %s after %d attempt(s)%s'):format(path, result.attempts, warnings),
      vim.log.levels.INFO
    )
  end, show_failure)
end

return M
