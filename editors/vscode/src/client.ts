/**
 * The language client: starts `sage.server.command`, sends the person's settings (and only
 * those), restarts the server for a new command, and offers the `SageConnection`
 * the chat and the commands use, whichever server process is current.
 */
import * as vscode from 'vscode';
import type { CancellationToken } from 'vscode-jsonrpc';
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  RevealOutputChannelOn,
  type LanguageClientOptions,
  type ServerOptions,
} from 'vscode-languageclient/node';
import type { Disposable, SageConnection } from './connection';
import type { SageCapabilities } from './protocol';
import { splitCommand } from './shellWords';
import { settingValue, userSettings, type SettingsObject } from './userSettings';

const SECTION = 'sage';

type Handler = (params: never) => void;

/** The server command from the settings (the user's own in an untrusted workspace), split like a shell would. */
function serverCommand(): string[] {
  const config = vscode.workspace.getConfiguration(SECTION);
  const line = settingValue('server.command', config.inspect('server.command'), vscode.workspace.isTrusted) ?? 'sage lsp';
  if (typeof line !== 'string') {
    throw new Error('the setting sage.server.command must be a string');
  }
  const words = splitCommand(line);
  if (words.length === 0) {
    throw new Error('the setting sage.server.command is empty');
  }
  return words;
}

/** The running `sage lsp` session, replaced by a new one on restart. */
export class SageClient implements SageConnection, vscode.Disposable {
  private client: LanguageClient | undefined;
  private starting: Promise<void> | undefined;
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly started = new vscode.EventEmitter<void>();

  /** Fires each time a server has started and answered `initialize`. */
  readonly onDidStart = this.started.event;

  /** `output` receives the server's log. */
  constructor(private readonly output: vscode.OutputChannel) {}

  /** The `sage` capabilities of the running server. */
  get capabilities(): SageCapabilities | undefined {
    const experimental = this.client?.initializeResult?.capabilities.experimental as { sage?: SageCapabilities } | undefined;
    return experimental?.sage;
  }

  /** The running client (for converting LSP payloads to VS Code's). */
  get languageClient(): LanguageClient | undefined {
    return this.client;
  }

  /** Starts a server; rejects with the reason when it cannot be started. */
  start(): Promise<void> {
    this.starting = this.launch();
    return this.starting;
  }

  /** Stops the server and starts a fresh one (conversations start over). */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Stops the server (shutdown, exit). */
  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.starting = undefined;
    if (client?.isRunning()) {
      await client.stop(3000).catch((error: unknown) => { this.output.appendLine(`stopping the server: ${String(error)}`); });
    }
  }

  /** Sends a request once the server runs; a `sage/*` method the server lacks is refused here. */
  async sendRequest<R>(method: string, params: unknown, token?: CancellationToken): Promise<R> {
    await this.starting;
    const client = this.client;
    if (!client?.isRunning()) {
      throw new Error('the Sage language server is not running (see the "Sage" output)');
    }
    const methods = this.capabilities?.methods;
    if (method.startsWith('sage/') && methods && !methods.includes(method)) {
      throw new Error(`this sage-lsp server does not support ${method}; update sage-lsp`);
    }
    return client.sendRequest<R>(method, params, token);
  }

  /** Calls `handler` with each `method` notification, from this server and the next ones. */
  onNotification(method: string, handler: Handler): Disposable {
    let set = this.handlers.get(method);
    if (!set) {
      set = new Set();
      this.handlers.set(method, set);
      if (this.client) {
        this.forward(this.client, method);
      }
    }
    set.add(handler);
    return { dispose: () => set.delete(handler) };
  }

  /**
   * Pushes the person's whole `sage` configuration (the server applies it over its start-up
   * settings, so an unset key goes back to its default), or restarts the server for a new
   * `sage.server.command`.
   */
  async settingsChanged(event: vscode.ConfigurationChangeEvent): Promise<void> {
    if (!event.affectsConfiguration(SECTION)) {
      return;
    }
    if (event.affectsConfiguration(`${SECTION}.server`) || !this.client?.isRunning()) {
      this.output.appendLine('restarting the server (new server command)');
      await this.restart();
      return;
    }
    await this.client.sendNotification(DidChangeConfigurationNotification.type, { settings: { [SECTION]: this.settings() } });
  }

  /** Stops the server and forgets every handler. */
  dispose(): void {
    void this.stop();
    this.started.dispose();
    this.handlers.clear();
  }

  /** Passes `client`'s `method` notifications to the handlers registered for it. */
  private forward(client: LanguageClient, method: string): void {
    client.onNotification(method, (params: unknown) => { this.notify(method, params as never); });
  }

  private notify(method: string, params: never): void {
    for (const handler of this.handlers.get(method) ?? []) {
      handler(params);
    }
  }

  /** The settings the person set, to send now. */
  private settings(): SettingsObject {
    const config = vscode.workspace.getConfiguration(SECTION);
    return userSettings((key) => config.inspect(key), vscode.workspace.isTrusted);
  }

  private async launch(): Promise<void> {
    const [command, ...args] = serverCommand();
    const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const serverOptions: ServerOptions = { command: command ?? 'sage', args, options: { cwd } };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [
        { scheme: 'file', pattern: '**/*.sage.yaml' },
        { scheme: 'file', language: 'yaml', pattern: '**/pipelines/**' },
      ],
      // No initializationOptions: the server pulls the section after `initialized`, and what it
      // pulls or is pushed replaces (not patches) the editor's settings.
      outputChannel: this.output,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      middleware: {
        workspace: {
          configuration: async (params, token, next) => {
            const answers = await next(params, token);
            if (!Array.isArray(answers)) {
              return answers;
            }
            return params.items.map((item, i): unknown => (item.section === SECTION ? this.settings() : answers[i]));
          },
        },
      },
    };
    const client = new LanguageClient('sage', 'Sage', serverOptions, clientOptions);
    for (const method of this.handlers.keys()) {
      this.forward(client, method);
    }
    this.client = client;
    await client.start();
    this.started.fire();
  }
}
