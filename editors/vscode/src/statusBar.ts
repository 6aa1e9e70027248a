/** The status bar item: the backend's state from `sage/status/didChange`; a click shows the menu. */
import * as vscode from 'vscode';
import { describeStatus } from './backendStatus';
import type { SageClient } from './client';
import type { Disposable } from './connection';
import { Methods, type BackendStatus, type StatusChange } from './protocol';

/** Shows the backend state and keeps the last one known. */
export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('sage.status', vscode.StatusBarAlignment.Right, 100);
  private readonly subscriptions: Disposable[] = [];
  private status: StatusChange | undefined;

  /** `command` runs when the item is clicked. */
  constructor(client: SageClient, command: string) {
    this.item.name = 'Sage';
    this.item.command = command;
    this.show(undefined);
    this.item.show();
    this.subscriptions.push(
      client.onNotification(Methods.statusDidChange, (change: StatusChange) => { this.show(change); }),
      client.onDidStart(async () => {
        this.show(undefined);
        const status = await client.sendRequest<BackendStatus>(Methods.backendStatus, {}).catch(() => undefined);
        if (!this.status) {
          this.show(status); // unless a notification came first
        }
      }),
    );
  }

  /** The last state reported, if any. */
  get current(): StatusChange | undefined {
    return this.status;
  }

  /** Shows `status` (or "connecting" when undefined). */
  show(status: StatusChange | undefined): void {
    this.status = status;
    const view = describeStatus(status);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.backgroundColor = view.error ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  /** Removes the item. */
  dispose(): void {
    for (const subscription of this.subscriptions) {
      subscription.dispose();
    }
    this.item.dispose();
  }
}
