--- The `sage/*` methods the plugin sends and handles and the code-action command it runs
--- itself (editor protocol v1, named as in sage_lsp/protocol.py, lower-cased). Every module
--- names a method through this table; tests/editors/test_protocol_contract.py checks each
--- method's name against the server's.
return {
  chat = 'sage/chat',
  backend_status = 'sage/backend/status',
  backend_start = 'sage/backend/start',
  backend_stop = 'sage/backend/stop',
  build_pipeline = 'sage/buildPipeline',
  chat_chunk = 'sage/chatChunk',
  status_did_change = 'sage/status/didChange',
  command_explain = 'sage.explain',
}
