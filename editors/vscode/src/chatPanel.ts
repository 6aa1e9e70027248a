/** The chat webview panel: created on demand, fed the controller's actions, state re-sent on show. */
import * as vscode from 'vscode';
import type { ChatController } from './chatController';
import type { Disposable } from './connection';
import { errorLine } from './errors';
import type { WebviewMessage } from './panelMessages';
import { makeNonce, renderPanelHtml } from './panelHtml';
import { isBusy, savedState } from './panelState';
import type { ContextRef } from './protocol';

/** The chat panel's view type, also the serializer's (`onWebviewPanel:sage.chat`). */
export const VIEW_TYPE = 'sage.chat';

/** One panel at a time, showing the controller's conversation. */
export class ChatPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private readonly subscription: Disposable;

  /** `extensionUri` locates dist/webview.js and media/chat.css. */
  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly controller: ChatController,
  ) {
    this.subscription = controller.onAction((action) => void this.panel?.webview.postMessage(action));
  }

  /** Shows the panel, creating it when needed. */
  show(): void {
    if (this.panel) {
      this.panel.reveal();
      return;
    }
    // The webview is rebuilt when shown again; it then asks for the state (`ready`), which the host keeps.
    const panel = vscode.window.createWebviewPanel(VIEW_TYPE, 'Sage Chat', vscode.ViewColumn.Beside, this.options());
    this.attach(panel);
  }

  /**
   * Takes the panel VS Code brings back after a window reload (the serializer), with the state
   * its webview saved: the conversation comes back from the server's history, or else from that
   * state.
   */
  async restore(panel: vscode.WebviewPanel, saved: unknown): Promise<void> {
    if (this.panel) {
      panel.dispose();
      return;
    }
    panel.webview.options = this.options();
    this.attach(panel);
    const conversation = savedState((saved as { panel?: unknown } | undefined)?.panel);
    if (conversation) {
      await this.controller.resume(conversation);
    }
  }

  private options(): vscode.WebviewPanelOptions & vscode.WebviewOptions {
    const roots = [vscode.Uri.joinPath(this.extensionUri, 'dist'), vscode.Uri.joinPath(this.extensionUri, 'media')];
    return { enableScripts: true, localResourceRoots: roots };
  }

  private attach(panel: vscode.WebviewPanel): void {
    const { webview } = panel;
    webview.html = renderPanelHtml({
      cspSource: webview.cspSource,
      nonce: makeNonce(),
      scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview.js')).toString(),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'media', 'chat.css')).toString(),
    });
    webview.onDidReceiveMessage((message: WebviewMessage) =>
      this.controller.handleMessage(message).catch((error: unknown) => {
        void vscode.window.showErrorMessage(`Sage: ${errorLine(error)}`);
      }),
    );
    panel.onDidDispose(() => {
      this.panel = undefined;
    });
    this.panel = panel;
  }

  /** Shows the panel and asks `question` in the conversation, with the documents of `context` attached. */
  async ask(question: string, context: ContextRef[] = []): Promise<void> {
    this.show();
    if (isBusy(this.controller.current)) {
      void vscode.window.showInformationMessage('Sage: an answer is being written; stop it or wait, then ask again.');
      return;
    }
    await this.controller.ask(question, context);
  }

  /** Closes the panel. */
  dispose(): void {
    this.subscription.dispose();
    this.panel?.dispose();
  }
}
