/** What the person is told when the language server did not start, or stopped by itself. */
import * as vscode from 'vscode';
import { errorLine } from './errors';
import { StartSuperseded } from './serverLifecycle';

/** The text of a failed start: `did not start` and the cause (exit code, end of stderr). */
export function startFailureText(error: unknown): string {
  return `Sage: the language server did not start (${errorLine(error)}). Check the setting sage.server.command.`;
}

/** Shows why the server did not start, offering the setting and the output; a replaced start says nothing. */
export async function reportStartFailure(error: unknown): Promise<void> {
  if (error instanceof StartSuperseded) {
    return;
  }
  const choice = await vscode.window.showErrorMessage(startFailureText(error), 'Open Settings', 'Show Output');
  if (choice === 'Open Settings') {
    await vscode.commands.executeCommand('workbench.action.openSettings', 'sage.server.command');
  } else if (choice === 'Show Output') {
    await vscode.commands.executeCommand('sage.showOutput');
  }
}

/** Shows that a running server ended by itself (`reason`: its exit and stderr), offering a restart. */
export async function reportServerStopped(reason: string): Promise<void> {
  const choice = await vscode.window.showErrorMessage(`Sage: the language server stopped (${reason}).`, 'Restart Server', 'Show Output');
  if (choice === 'Restart Server') {
    await vscode.commands.executeCommand('sage.restartServer');
  } else if (choice === 'Show Output') {
    await vscode.commands.executeCommand('sage.showOutput');
  }
}
