/** The extension's entry point: wires the client, the chat panel, the status bar and the commands. */
import * as vscode from 'vscode';
import { ChatController } from './chatController';
import { ChatPanel, VIEW_TYPE } from './chatPanel';
import { SageClient } from './client';
import { registerCommands, SHOW_STATUS_COMMAND } from './commands';
import { VsCodeEditorActions } from './editorActions';
import { registerNativeChat } from './nativeChat/register';
import { reportServerStopped, reportStartFailure } from './serverReports';
import { StatusBar } from './statusBar';

let client: SageClient | undefined;

/** Called by VS Code when the extension activates. */
export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('Sage');
  const sage = new SageClient(output);
  client = sage;
  const editor = new VsCodeEditorActions();
  const controller = new ChatController(sage, editor);
  const panel = new ChatPanel(context.extensionUri, controller);
  const status = new StatusBar(sage, SHOW_STATUS_COMMAND);
  context.subscriptions.push(
    output,
    sage,
    editor,
    controller,
    panel,
    status,
    ...registerCommands({ client: sage, panel, status, output }),
    vscode.workspace.onDidChangeConfiguration((event) => sage.settingsChanged(event).catch(reportStartFailure)),
    // Trusting the workspace lets its restricted settings (the server command included) apply.
    vscode.workspace.onDidGrantWorkspaceTrust(() => sage.restart().catch(reportStartFailure)),
    sage.onDidStopUnexpectedly((reason) => void reportServerStopped(reason)),
    // After a window reload VS Code brings the chat panel back with the state its webview saved.
    vscode.window.registerWebviewPanelSerializer(VIEW_TYPE, { deserializeWebviewPanel: (webviewPanel, state) => panel.restore(webviewPanel, state) }),
  );
  // VS Code's own Chat (@sage, the sage models), where this VS Code has it.
  registerNativeChat(context, sage, output);
  sage.start().catch(reportStartFailure);
}

/** Called by VS Code when the extension deactivates: ends the server session. */
export async function deactivate(): Promise<void> {
  await client?.stop();
  client = undefined;
}
