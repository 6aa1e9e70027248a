/** What the chat panel's buttons do in VS Code: copy, insert at the cursor, open a source or an attached document. */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { EditorActions } from './chatController';

/** The VS Code side of the panel's buttons. */
export class VsCodeEditorActions implements EditorActions, vscode.Disposable {
  private lastEditor: vscode.TextEditor | undefined = vscode.window.activeTextEditor;
  private readonly subscription = vscode.window.onDidChangeActiveTextEditor((editor) => {
    // The panel takes the focus from the editor; insert goes where the person was typing last.
    if (editor) {
      this.lastEditor = editor;
    }
  });

  /** Puts `code` on the clipboard. */
  async copy(code: string): Promise<void> {
    await vscode.env.clipboard.writeText(code);
    vscode.window.setStatusBarMessage('Sage: code copied', 2000);
  }

  /** Replaces the selections of the last active editor with `code`. */
  async insert(code: string): Promise<void> {
    const editor = this.lastEditor ?? vscode.window.visibleTextEditors[0];
    if (!editor || editor.document.isClosed) {
      void vscode.window.showWarningMessage('Sage: open a file to insert the code into.');
      return;
    }
    await editor.edit((builder) => { editor.selections.forEach((selection) => { builder.replace(selection, code); }); });
    await vscode.window.showTextDocument(editor.document, editor.viewColumn);
  }

  /**
   * Opens a source file: `source` is its `file:` URI, or, when the server does not know the
   * folder the index was built from, a path relative to that folder, looked for in the
   * workspace folders.
   */
  async openSource(source: string): Promise<void> {
    const uri = source.startsWith('file:') ? vscode.Uri.parse(source) : this.inWorkspace(source);
    if (!uri) {
      void vscode.window.showWarningMessage(`Sage: cannot find ${source} in the indexed folders or the workspace.`);
      return;
    }
    await vscode.commands.executeCommand('vscode.open', uri);
  }

  /** The document `uri` as the workspace names it (relative to its folder when it is in one). */
  relativePath(uri: string): string {
    return vscode.workspace.asRelativePath(vscode.Uri.parse(uri));
  }

  /** Stops following the active editor. */
  dispose(): void {
    this.subscription.dispose();
  }

  /** The first workspace folder holding the relative path `source`. */
  private inWorkspace(source: string): vscode.Uri | undefined {
    const found = (vscode.workspace.workspaceFolders ?? [])
      .map((folder) => path.join(folder.uri.fsPath, source))
      .find((file) => existsSync(file));
    return found ? vscode.Uri.file(found) : undefined;
  }
}
