/** The extension's commands. */
import * as vscode from 'vscode';
import type { ChatPanel } from './chatPanel';
import type { SageClient } from './client';
import { pipelineFileName } from './commandText';
import { request } from './connection';
import { contextRef } from './editorContext';
import { errorCode, errorLine } from './errors';
import {
  Commands,
  ErrorCodes,
  Methods,
  type BuildPipelineParams,
  type ContextRef,
  type ServiceInfo,
} from './protocol';
import { reportStartFailure } from './serverReports';
import type { StatusBar } from './statusBar';

/** What the commands work with. */
export interface CommandContext {
  client: SageClient;
  panel: ChatPanel;
  status: StatusBar;
  output: vscode.OutputChannel;
}

/** The command the status bar item runs. */
export const SHOW_STATUS_COMMAND = 'sage.showStatus';

function logPathOf(error: unknown): string | undefined {
  const data = (error as { data?: { logPath?: unknown } } | undefined)?.data;
  return errorCode(error) === ErrorCodes.serviceFailed && typeof data?.logPath === 'string' ? data.logPath : undefined;
}

async function openFile(file: string): Promise<void> {
  await vscode.window.showTextDocument(vscode.Uri.file(file), { preview: true });
}

/** Shows a failed request in one line (a cancelled one shows nothing); a failed service start offers its log. */
async function showError(error: unknown): Promise<void> {
  if (errorCode(error) === ErrorCodes.requestCancelled) {
    return;
  }
  const logPath = logPathOf(error);
  const choice = await vscode.window.showErrorMessage(`Sage: ${errorLine(error)}`, ...(logPath ? ['Open Log'] : []));
  if (choice === 'Open Log' && logPath) {
    await openFile(logPath);
  }
}

/** The question the panel asks about attached code when the person gives none. */
const EXPLAIN = 'Explain this code.';

/** The selection of `editor` as a reference, with the diagnostics VS Code shows on it (the server reads the text). */
function selectionContext(editor: vscode.TextEditor): ContextRef {
  const { uri } = editor.document;
  return contextRef(uri.toString(), editor.selection, vscode.languages.getDiagnostics(uri));
}

async function askAboutSelection({ panel }: CommandContext): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  const code = editor?.document.getText(editor.selection) ?? '';
  if (!editor || !code.trim()) {
    void vscode.window.showInformationMessage('Sage: select some code first.');
    return;
  }
  const question = await vscode.window.showInputBox({
    title: 'Ask Sage about the selection',
    prompt: 'Your question about the selected code',
    value: EXPLAIN,
  });
  if (question === undefined) {
    return;
  }
  await panel.ask(question.trim() || EXPLAIN, [selectionContext(editor)]);
}

/** `sage.explain`, the server's "Sage: explain" code action: the chat explains the code it names. */
async function explain({ panel }: CommandContext, context: unknown): Promise<void> {
  const ref = context as ContextRef | undefined;
  if (typeof ref?.uri !== 'string') {
    void vscode.window.showInformationMessage('Sage: explain runs from the code actions (the light bulb) of a selection or a problem.');
    return;
  }
  await panel.ask(EXPLAIN, [ref]);
}

async function buildPipeline({ client }: CommandContext): Promise<void> {
  const description = await vscode.window.showInputBox({
    title: 'Build a SAGE pipeline',
    prompt: 'What should the pipeline do?',
    placeHolder: 'answer questions about our docs with retrieval',
    validateInput: (text) => (text.trim() ? undefined : 'Describe the pipeline'),
  });
  if (!description) {
    return;
  }
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
  const name = pipelineFileName(description);
  const target = await vscode.window.showSaveDialog({
    title: 'Save the pipeline as',
    defaultUri: folder ? vscode.Uri.joinPath(folder, 'pipelines', name) : undefined,
    filters: { 'SAGE pipeline': ['yaml', 'yml'] },
  });
  if (!target) {
    return;
  }
  // The server's edit only creates new files; replacing one the save dialog confirmed is ours.
  const replacing = await vscode.workspace.fs.stat(target).then(() => true, () => false);
  try {
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'Sage: building the pipeline…', cancellable: true },
      (_progress, token) => {
        const params: BuildPipelineParams = replacing ? { description } : { description, targetUri: target.toString() };
        return request(client, Methods.buildPipeline, params, token);
      },
    );
    if (replacing) {
      await vscode.workspace.fs.writeFile(target, new TextEncoder().encode(result.yaml));
    } else {
      const converter = client.languageClient?.protocol2CodeConverter;
      if (!result.edit || !converter) {
        throw new Error('the server sent no edit for the pipeline file');
      }
      if (!(await vscode.workspace.applyEdit(await converter.asWorkspaceEdit(result.edit)))) {
        throw new Error(`could not write ${target.fsPath}`);
      }
    }
    const document = await vscode.workspace.openTextDocument(target);
    await document.save();
    await vscode.window.showTextDocument(document);
    const warnings = result.errors.length ? ` (warnings: ${result.errors.join('; ')})` : '';
    void vscode.window.showInformationMessage(`Sage: pipeline ${result.name} built in ${result.attempts} attempt(s)${warnings}.`);
  } catch (error) {
    await showError(error);
  }
}

async function startModel({ client }: CommandContext): Promise<void> {
  try {
    const status = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'Sage: starting the model…', cancellable: true },
      (_progress, token) => request(client, Methods.backendStart, {}, token),
    );
    void vscode.window.showInformationMessage(`Sage: ${status.message ?? `${status.backend} ${status.state}`}`);
  } catch (error) {
    await showError(error);
  }
}

async function stopModel({ client }: CommandContext): Promise<void> {
  try {
    const status = await request(client, Methods.backendStop, {});
    void vscode.window.showInformationMessage(`Sage: ${status.backend} backend stopped.`);
  } catch (error) {
    await showError(error);
  }
}

interface ServiceItem extends vscode.QuickPickItem {
  service: ServiceInfo;
}

async function pickService(services: ServiceInfo[], title: string): Promise<ServiceInfo | undefined> {
  const items = services.map(
    (service): ServiceItem => ({
      label: service.name,
      description: `port ${service.port} · ${service.state}`,
      detail: `${service.holders} session(s) · pid ${service.pid ?? '?'} · ${service.logPath}`,
      service,
    }),
  );
  return (await vscode.window.showQuickPick(items, { title, placeHolder: 'Pick a service to open its log' }))?.service;
}

async function listServices(client: SageClient): Promise<ServiceInfo[] | undefined> {
  try {
    const { services } = await request(client, Methods.services, {});
    if (services.length === 0) {
      void vscode.window.showInformationMessage('Sage: no model services are running.');
    }
    return services;
  } catch (error) {
    await showError(error);
    return undefined;
  }
}

async function showServices({ client }: CommandContext): Promise<void> {
  const services = await listServices(client);
  const picked = services?.length ? await pickService(services, 'Sage model services') : undefined;
  if (picked) {
    await openFile(picked.logPath);
  }
}

async function openServiceLog({ client }: CommandContext): Promise<void> {
  const status = await request(client, Methods.backendStatus, {}).catch(() => undefined);
  if (status?.service?.logPath) {
    await openFile(status.service.logPath);
    return;
  }
  const services = await listServices(client);
  const picked = services?.length === 1 ? services[0] : services?.length ? await pickService(services, 'Open a service log') : undefined;
  if (picked) {
    await openFile(picked.logPath);
  }
}

const MENU: { label: string; command: string }[] = [
  { label: '$(comment-discussion) Open Chat', command: 'sage.openChat' },
  { label: '$(play) Start Model', command: 'sage.startModel' },
  { label: '$(debug-stop) Stop Model', command: 'sage.stopModel' },
  { label: '$(server) Show Services', command: 'sage.showServices' },
  { label: '$(output) Open Service Log', command: 'sage.openServiceLog' },
  { label: '$(symbol-structure) Build Pipeline', command: 'sage.buildPipeline' },
  { label: '$(debug-restart) Restart Server', command: 'sage.restartServer' },
  { label: '$(list-flat) Show Server Output', command: 'sage.showOutput' },
];

async function showStatus({ status }: CommandContext): Promise<void> {
  const current = status.current;
  const picked = await vscode.window.showQuickPick(MENU, {
    title: current ? `Sage: ${current.backend}${current.model ? ` (${current.model})` : ''}, ${current.state}` : 'Sage',
    placeHolder: current?.message ?? 'Sage commands',
  });
  if (picked) {
    await vscode.commands.executeCommand(picked.command);
  }
}

async function restartServer({ client }: CommandContext): Promise<void> {
  await client.restart().catch(reportStartFailure);
}

/** Registers every command; the returned disposables unregister them. */
export function registerCommands(context: CommandContext): vscode.Disposable[] {
  const commands: Record<string, (context: CommandContext, ...args: unknown[]) => Promise<void> | void> = {
    'sage.openChat': ({ panel }) => { panel.show(); },
    'sage.askAboutSelection': askAboutSelection,
    [Commands.explain]: explain,
    'sage.buildPipeline': buildPipeline,
    'sage.startModel': startModel,
    'sage.stopModel': stopModel,
    'sage.showServices': showServices,
    'sage.openServiceLog': openServiceLog,
    'sage.restartServer': restartServer,
    'sage.showOutput': ({ output }) => { output.show(); },
    [SHOW_STATUS_COMMAND]: showStatus,
  };
  return Object.entries(commands).map(([id, run]) => vscode.commands.registerCommand(id, (...args: unknown[]) => run(context, ...args)));
}
