/**
 * A real `sage lsp` process behind a vscode-jsonrpc connection, with an isolated SAGE_HOME:
 * what the extension's LanguageClient does, in plain Node.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import {
  CancellationTokenSource,
  createMessageConnection,
  StreamMessageReader,
  StreamMessageWriter,
  type MessageConnection,
} from 'vscode-jsonrpc/node';
import { Methods, type SageCapabilities, type StatusChange } from '../../src/protocol';
import type { SettingsObject } from '../../src/userSettings';
import { extensionRoot, sageLspCommand } from './paths';
import { spawnTracked, stopProcess } from './processes';

/** How to start the server. */
export interface SageServerOptions {
  /** `initializationOptions` of `initialize`. */
  initializationOptions?: SettingsObject;
  /** The answer to `workspace/configuration` (section sage); none: the capability is not declared. */
  configuration?: SettingsObject;
}

/** A started and initialized server. */
export interface SageServer {
  connection: MessageConnection;
  capabilities: { experimental?: { sage?: SageCapabilities } };
  /** Every `sage/status/didChange`, in order. */
  statuses: StatusChange[];
  /** Every `window/showMessage` text. */
  messages: string[];
  /** The answers given to `workspace/configuration`. */
  configurationAnswers: unknown[];
  /** Pushes settings with `workspace/didChangeConfiguration`. */
  pushSettings(settings: SettingsObject): Promise<void>;
  /** Builds index `name` from a folder of two Markdown files; their paths are relative to it. */
  ingestNotes(name: string): Promise<void>;
  stop(): Promise<void>;
}

const NOTES: Record<string, string> = {
  'guide/install.md':
    '# Installing sage-lsp\n\n## Virtual environment\n\nCreate a virtual environment with `python -m venv .venv`, ' +
    'activate it, then install sage-lsp into the virtual environment with pip.\n',
  'pipelines.md': '# Pipelines\n\n## Map stages\n\nA map stage applies a function to every record of the stream.\n',
};

function lastLines(text: string): string {
  return text.split('\n').slice(-20).join('\n');
}

async function shutdown(connection: MessageConnection, child: ChildProcess): Promise<void> {
  if (child.exitCode === null) {
    const source = new CancellationTokenSource();
    const timer = setTimeout(() => {
      source.cancel();
    }, 3000);
    await connection.sendRequest('shutdown', source.token).catch(() => undefined);
    clearTimeout(timer);
    await connection.sendNotification('exit').catch(() => undefined);
  }
  connection.dispose();
  await stopProcess(child);
}

/** Starts `sage lsp` (SAGE_HOME a new temp folder, SAGE_INDEX=none) and runs the handshake. */
export async function startSageServer(options: SageServerOptions = {}): Promise<SageServer> {
  const sageHome = mkdtempSync(path.join(tmpdir(), 'sage-home-'));
  const [command = 'sage', ...args] = sageLspCommand();
  const child = spawnTracked(command, args, {
    cwd: extensionRoot,
    env: { ...process.env, SAGE_HOME: sageHome, SAGE_INDEX: 'none' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (data: Buffer) => {
    stderr = lastLines(stderr + data.toString());
  });
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  await spawned;
  if (!child.stdout || !child.stdin) {
    throw new Error('sage lsp has no stdio');
  }
  const connection = createMessageConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
  const server: Omit<SageServer, 'capabilities'> = {
    connection,
    statuses: [],
    messages: [],
    configurationAnswers: [],
    pushSettings: (settings) => connection.sendNotification('workspace/didChangeConfiguration', { settings: { sage: settings } }),
    async ingestNotes(name) {
      const folder = path.join(sageHome, 'notes');
      for (const [file, text] of Object.entries(NOTES)) {
        mkdirSync(path.dirname(path.join(folder, file)), { recursive: true });
        writeFileSync(path.join(folder, file), text);
      }
      await connection.sendRequest('sage/index/ingest', { source: folder, index: name });
    },
    async stop() {
      await shutdown(connection, child);
      rmSync(sageHome, { recursive: true, force: true });
    },
  };
  connection.onNotification(Methods.statusDidChange, (status: StatusChange) => server.statuses.push(status));
  connection.onNotification('window/showMessage', (params: { message: string }) => server.messages.push(params.message));
  connection.onNotification('window/logMessage', () => undefined);
  connection.onRequest('workspace/configuration', (params: { items: unknown[] }) => {
    const answer = params.items.map(() => options.configuration ?? null);
    server.configurationAnswers.push(answer[0]);
    return answer;
  });
  connection.onClose(() => {
    if (child.exitCode !== null && child.exitCode !== 0) {
      process.stderr.write(`sage lsp exited with ${String(child.exitCode)}:\n${stderr}\n`);
    }
  });
  connection.listen();
  const result = await connection.sendRequest<{ capabilities: SageServer['capabilities'] }>('initialize', {
    processId: process.pid,
    rootUri: null,
    capabilities: { workspace: { configuration: options.configuration !== undefined } },
    initializationOptions: options.initializationOptions ?? {},
  });
  await connection.sendNotification('initialized', {});
  return { ...server, capabilities: result.capabilities };
}
