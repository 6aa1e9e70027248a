/** The status bar item: the backend's state from `sage/status/didChange`; a click shows the menu. */
import * as vscode from 'vscode';
import { describeServerDown, describeStatus, shouldPrepare } from './backendStatus';
import type { SageClient } from './client';
import { request, type Disposable } from './connection';
import { Methods, type StatusChange } from './protocol';

/** Shows the backend state and keeps the last one known. */
export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('sage.status', vscode.StatusBarAlignment.Right, 100);
  private readonly subscriptions: Disposable[] = [];
  private status: StatusChange | undefined;
  private preparing = false;
  private prepareAgain = false;

  /** `command` runs when the item is clicked. */
  constructor(client: SageClient, command: string) {
    this.item.name = 'Sage';
    this.item.command = command;
    this.show(undefined);
    this.item.show();
    this.subscriptions.push(
      client.onNotification(Methods.statusDidChange, (change: StatusChange) => {
        this.show(change);
        if (shouldPrepare(change)) {
          void this.prepare(client); // a settings change made way for another backend
        }
      }),
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
    const status = await request(client, Methods.backendStatus, {}).catch(() => undefined);
    if (!status) {
      return;
    }
    if (!this.status) {
      this.show(status); // unless a notification came first
    }
    if (this.status && shouldPrepare(this.status)) {
      await this.prepare(client);
    }
  }

  /** Prepares the backend (one request at a time); its state changes arrive as notifications. */
  private async prepare(client: SageClient): Promise<void> {
    if (this.preparing) {
      this.prepareAgain = true; // the backend changed again meanwhile
      return;
    }
    this.preparing = true;
    try {
      // A failure shows as the `error` state (notified); the result covers a server that notifies nothing.
      const prepared = await request(client, Methods.backendStart, {}).catch(() => undefined);
      if (prepared && this.current?.state === 'idle') {
        this.show(prepared);
      }
    } finally {
      this.preparing = false;
    }
    const current = this.current;
    if (this.prepareAgain && current && shouldPrepare(current)) {
      this.prepareAgain = false;
      await this.prepare(client);
    }
    this.prepareAgain = false;
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
