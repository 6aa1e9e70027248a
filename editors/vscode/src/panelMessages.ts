/** Messages from the chat webview to the extension host (the other way, see `PanelAction`). */
export type WebviewMessage =
  | { type: 'ready' }
  | { type: 'send'; text: string }
  | { type: 'stop' }
  | { type: 'newChat' }
  | { type: 'copy'; code: string }
  | { type: 'insert'; code: string }
  | { type: 'openSource'; path: string };
