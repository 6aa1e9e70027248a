/** What the chat panel's buttons do in VS Code: copy, insert at the cursor, open a source. */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { EditorActions } from './chatController';
import type { SageConnection } from './connection';
import { Methods } from './protocol';

interface IndexList {
  indexes: { sourceDir: string | null }[];
}

/** The VS Code side of the panel's buttons. */
export class VsCodeEditorActions implements EditorActions, vscode.Disposable {
  private lastEditor: vscode.TextEditor | undefined = vscode.window.activeTextEditor;
  private readonly subscription = vscode.window.onDidChangeActiveTextEditor((editor) => {
    // The panel takes the focus from the editor; insert goes where the person was typing last.
    if (editor) {
      this.lastEditor = editor;
    }
  });

  /** `connection` lists the indexes whose folders a source path is relative to. */
  constructor(private readonly connection: SageConnection) {}

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
   * Opens a source file: `source` is its `file:` URI, or (from an older server) a path relative
   * to the folder its index was built from.
   */
  async openSource(source: string): Promise<void> {
    const found = source.startsWith('file:')
      ? vscode.Uri.parse(source).fsPath
      : (await this.candidates(source)).find((file) => existsSync(file));
    if (!found) {
      void vscode.window.showWarningMessage(`Sage: cannot find ${source} in the indexed folders or the workspace.`);
      return;
    }
    await vscode.commands.executeCommand('vscode.open', vscode.Uri.file(found));
  }

  /** Stops following the active editor. */
  dispose(): void {
    this.subscription.dispose();
  }

  private async candidates(source: string): Promise<string[]> {
    if (path.isAbsolute(source)) {
      return [source];
    }
    const list = await this.connection.sendRequest<IndexList>(Methods.indexList, {}).catch(() => ({ indexes: [] }));
    const folders = [
      ...list.indexes.flatMap((index) => (index.sourceDir ? [index.sourceDir] : [])),
      ...(vscode.workspace.workspaceFolders ?? []).map((folder) => folder.uri.fsPath),
    ];
    return folders.map((folder) => path.join(folder, source));
  }
}
