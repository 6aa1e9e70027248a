/** The status bar item: the backend's state from `sage/status/didChange`; a click shows the menu. */
import * as vscode from 'vscode';
import { describeServerDown, describeStatus, preparesAtStart } from './backendStatus';
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
      client.onDidStart(() => void this.refresh(client)),
      client.onDidFail((reason) => { this.showDown(reason); }),
    );
  }

  /**
   * After a start: asks for the backend's state, and prepares a backend that needs no launch
   * (mock, an endpoint), so the item tells at once whether Sage is usable; the state's changes
   * then arrive as `sage/status/didChange`.
   */
  private async refresh(client: SageClient): Promise<void> {
    this.show(undefined);
    const status = await client.sendRequest<BackendStatus>(Methods.backendStatus, {}).catch(() => undefined);
    if (!status) {
      return;
    }
    if (!this.status) {
      this.show(status); // unless a notification came first
    }
    if (this.status && preparesAtStart(this.status)) {
      // A failure shows as the `error` state (notified); the result covers a server that notifies nothing.
      const prepared = await client.sendRequest<BackendStatus>(Methods.backendStart, {}).catch(() => undefined);
      if (prepared && this.current?.state === 'idle') {
        this.show(prepared);
      }
    }
  }

  /** Shows that the language server is not there, and why. */
  showDown(reason: string): void {
    this.status = undefined;
    const view = describeServerDown(reason);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
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
