-- The sage-lsp server for vim.lsp.config('sage', {...}) and vim.lsp.enable('sage') (Neovim 0.11+).
-- Pipeline plans are YAML, so the server attaches to YAML buffers; the :Sage* commands of
-- require('sage').setup() use this client too.
local defaults = require('sage.config').defaults
return vim.tbl_extend('force', require('sage.client').lsp_config(defaults), {
  filetypes = { 'yaml' },
  root_markers = { '.git' },
})
