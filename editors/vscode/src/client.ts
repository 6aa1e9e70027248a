/**
 * The language client: starts `sage.server.command`, sends the person's settings (and only
 * those), restarts the server for a new command, and offers the `SageConnection`
 * the chat and the commands use, whichever server process is current.
 *
 * Starts, restarts and stops run one at a time (`ServerLifecycle`), and each start reads the
 * server command when it runs. Before, a configuration change that arrived while the first
 * server was still starting restarted it concurrently: `stop()` skipped the client that was not
 * yet running, so two clients started side by side and the first, started from the settings
 * read at activation, was left behind; when those settings were not all there yet, that was the
 * default `sage` ("spawn sage ENOENT").
 *
 * The extension spawns the server itself, so a server that exits at start is reported with its
 * exit code and the end of its stderr, and the client library's own notifications ("write
 * EPIPE", "couldn't create connection") go to the output only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as vscode from 'vscode';
import type { CancellationToken } from 'vscode-jsonrpc';
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  LanguageClient,
  RevealOutputChannelOn,
  type LanguageClientOptions,
  type ServerOptions,
} from 'vscode-languageclient/node';
import type { Disposable, SageConnection } from './connection';
import { errorLine } from './errors';
import { documentSelector } from './documentSelector';
import type { SageCapabilities } from './protocol';
import { ServerLifecycle, StartSuperseded, requestArguments } from './serverLifecycle';
import { exitDescription, StderrTail } from './serverProcess';
import { splitCommand } from './shellWords';
import { settingValue, userSettings, type SettingsObject } from './userSettings';

const SECTION = 'sage';

/** How long a failed start of the default command waits for the settings before it is reported. */
const DEFAULT_COMMAND_GRACE_MS = 2000;

type Handler = (params: never) => void;

/** The server command from the settings (the user's own in an untrusted workspace), split like a shell would. */
function serverCommand(): { words: string[]; set: boolean } {
  const config = vscode.workspace.getConfiguration(SECTION);
  const value = settingValue('server.command', config.inspect('server.command'), vscode.workspace.isTrusted);
  const line = value ?? 'sage lsp';
  if (typeof line !== 'string') {
    throw new Error('the setting sage.server.command must be a string');
  }
  const words = splitCommand(line);
  if (words.length === 0) {
    throw new Error('the setting sage.server.command is empty');
  }
  return { words, set: value !== undefined };
}

/** The server command now, or undefined when the setting is unusable. */
function currentCommand(): string[] | undefined {
  try {
    return serverCommand().words;
  } catch {
    return undefined;
  }
}

function sameWords(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((word, i) => word === b[i]);
}

/** A LanguageClient whose own messages go to the output only: the extension reports what matters. */
class SageLanguageClient extends LanguageClient {
  override error(message: string, data?: unknown): void {
    super.error(message, data, false);
  }
}

/** The client of one start, with what its process left behind. */
class SageSession {
  /** How the process ended, once it has. */
  end: string | undefined;
  readonly stderr = new StderrTail();
  /** Whether `initialize` was answered (and the server has not stopped since). */
  running = false;
  child: ChildProcess | undefined;
  private ended: (() => void) | undefined;
  private readonly exited = new Promise<void>((resolve) => { this.ended = resolve; });

  /** Set right after construction (its options refer to the session). */
  client!: SageLanguageClient;

  /** `command`: the words run; `commandSet`: whether they came from the settings (not the default). */
  constructor(
    readonly command: string[],
    readonly commandSet: boolean,
  ) {}

  async start(): Promise<void> {
    try {
      // A process that exits before `initialize` is answered ends the start at once: the client
      // library does not always settle its start then (it may wait for an answer forever).
      const exitedFirst = this.exited.then(() => Promise.reject(new Error(this.end)));
      await Promise.race([this.client.start(), exitedFirst]);
      if (!this.client.isRunning()) {
        // The library's start resolves (instead of rejecting) when the connection closed
        // while `initialize` was pending and its close handler ran first.
        throw new Error('the server closed the connection before answering initialize');
      }
      this.running = true;
    } catch (error) {
      // The connection may close before the process's exit is known: wait for it a moment.
      await Promise.race([this.exited, new Promise((resolve) => setTimeout(resolve, 1000))]);
      throw this.end ? new Error(this.end) : error instanceof Error ? error : new Error(String(error));
    }
  }

  /** Notes how the process ended. */
  exit(description: string): void {
    this.end ??= description;
    this.ended?.();
  }

  async stop(timeout?: number): Promise<void> {
    const initialized = this.client.isRunning();
    this.running = false;
    if (initialized) {
      await this.client.stop(timeout).catch(() => undefined);
      // `exit` ends the server; one that lingers is ended as the client library would.
      await Promise.race([this.exited, new Promise((resolve) => setTimeout(resolve, 2000))]);
    }
    this.abort(); // a server that never answered `initialize` is not told to exit: end it
  }

  /** Ends a process that is still starting. */
  abort(): void {
    if (this.child?.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
    }
  }

  isRunning(): boolean {
    return this.client.isRunning();
  }
}

/** The running `sage lsp` session, replaced by a new one on restart. */
export class SageClient implements SageConnection, vscode.Disposable {
  private readonly lifecycle: ServerLifecycle<SageSession>;
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly started = new vscode.EventEmitter<void>();
  private readonly stopped = new vscode.EventEmitter<string>();
  private readonly failed = new vscode.EventEmitter<string>();

  /** Fires each time a server has started and answered `initialize`. */
  readonly onDidStart = this.started.event;

  /** Fires with the reason when a server that had started ends by itself. */
  readonly onDidStopUnexpectedly = this.stopped.event;

  /** Fires with the reason when a server did not start or stopped by itself. */
  readonly onDidFail: vscode.Event<string>;

  /** `output` receives the server's log. */
  constructor(private readonly output: vscode.OutputChannel) {
    this.onDidFail = this.failed.event;
    this.stopped.event((reason) => { this.failed.fire(`the language server stopped (${reason})`); });
    this.lifecycle = new ServerLifecycle(
      () => this.createSession(),
      () => { this.started.fire(); },
    );
  }

  /** The `sage` capabilities of the running server. */
  get capabilities(): SageCapabilities | undefined {
    const experimental = this.languageClient?.initializeResult?.capabilities.experimental as { sage?: SageCapabilities } | undefined;
    return experimental?.sage;
  }

  /** The running client (for converting LSP payloads to VS Code's). */
  get languageClient(): LanguageClient | undefined {
    return this.lifecycle.client?.client;
  }

  /**
   * Starts a server (stopping the one running); rejects with the reason when it cannot be
   * started, or with `StartSuperseded` when a newer start replaced this one.
   */
  async start(): Promise<void> {
    try {
      await this.lifecycle.start();
    } catch (error) {
      const failed = this.lifecycle.client;
      if (!(error instanceof StartSuperseded) && failed && !failed.commandSet) {
        // The default command failed: the person's settings may reach the extension host just
        // after activation (their change restarts the server). Give them a moment.
        await new Promise((resolve) => setTimeout(resolve, DEFAULT_COMMAND_GRACE_MS));
        if (this.lifecycle.client !== failed) {
          throw new StartSuperseded();
        }
        if (!sameWords(currentCommand() ?? failed.command, failed.command)) {
          this.output.appendLine('the server command changed meanwhile: starting again');
          return this.start(); // the settings came without a change event
        }
      }
      if (!(error instanceof StartSuperseded)) {
        this.output.appendLine(`the server did not start: ${errorLine(error)}`);
        this.failed.fire(`the language server did not start (${errorLine(error)})`);
      }
      throw error;
    }
  }

  /** Stops the server and starts a fresh one (conversations start over). */
  restart(): Promise<void> {
    return this.start();
  }

  /** Stops the server (shutdown, exit). */
  stop(): Promise<void> {
    return this.lifecycle.stop();
  }

  /** Sends a request once the server runs; a `sage/*` method the server lacks is refused here. */
  async sendRequest<R>(method: string, params: unknown, token?: CancellationToken): Promise<R> {
    const session = await this.lifecycle.running();
    const methods = this.capabilities?.methods;
    if (method.startsWith('sage/') && methods && !methods.includes(method)) {
      throw new Error(`this sage-lsp server does not support ${method}; update sage-lsp`);
    }
    const send = session.client.sendRequest.bind(session.client) as (method: string, ...args: unknown[]) => Promise<R>;
    return send(method, ...requestArguments(params, token));
  }

  /** Calls `handler` with each `method` notification, from this server and the next ones. */
  onNotification(method: string, handler: Handler): Disposable {
    let set = this.handlers.get(method);
    if (!set) {
      set = new Set();
      this.handlers.set(method, set);
      const client = this.languageClient;
      if (client) {
        this.forward(client, method);
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
    const client = this.languageClient;
    if (event.affectsConfiguration(`${SECTION}.server`) || !client?.isRunning()) {
      this.output.appendLine('restarting the server (new server command)');
      await this.restart();
      return;
    }
    await client.sendNotification(DidChangeConfigurationNotification.type, { settings: { [SECTION]: this.settings() } });
  }

  /** Stops the server and forgets every handler. */
  dispose(): void {
    void this.stop();
    this.started.dispose();
    this.stopped.dispose();
    this.failed.dispose();
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

  /** A client for the settings as they are now; its process is spawned when it starts. */
  private createSession(): SageSession {
    const { words, set } = serverCommand();
    const [command = 'sage', ...args] = words;
    const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    this.output.appendLine(`starting the server: ${words.join(' ')}${set ? '' : ' (the default of sage.server.command)'}`);
    const session = new SageSession(words, set);
    const serverOptions: ServerOptions = () =>
      new Promise<ChildProcess>((resolve, reject) => {
        const child = spawn(command, args, { cwd, stdio: 'pipe' });
        session.child = child;
        child.stderr.on('data', (data: Buffer) => { session.stderr.push(data); });
        child.once('error', (error) => {
          const description = `cannot run ${command}: ${error.message}`;
          session.exit(description);
          reject(new Error(description));
        });
        child.once('spawn', () => { resolve(child); });
        child.once('exit', (code, signal) => {
          const wasRunning = session.running;
          const description = exitDescription(code, signal, session.stderr);
          session.exit(description);
          if (wasRunning && this.lifecycle.client === session) {
            session.running = false;
            this.output.appendLine(description);
            this.stopped.fire(description);
          }
        });
      });
    const clientOptions: LanguageClientOptions = {
      documentSelector: documentSelector(),
      // No initializationOptions: the server pulls the section after `initialized`, and what it
      // pulls or is pushed replaces (not patches) the editor's settings.
      outputChannel: this.output,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      // No restarts behind the extension's back, no notifications of its own: a server that
      // exits is reported once, with its exit code and stderr (onDidStopUnexpectedly).
      // A failed `initialize` is reported by the extension (not as a bare "write EPIPE").
      initializationFailedHandler: () => false,
      errorHandler: {
        error: (_error, _message, count) => ({ action: (count ?? 0) <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown, handled: true }),
        closed: () => ({ action: CloseAction.DoNotRestart, handled: true }),
      },
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
    const client = new SageLanguageClient('sage', 'Sage', serverOptions, clientOptions);
    // `textDocument/inlineCompletion` (LSP 3.18) is a proposed feature of vscode-languageclient 9:
    // the server's completions show as ghost text (`completion.enabled` turns them off).
    client.registerProposedFeatures();
    for (const method of this.handlers.keys()) {
      this.forward(client, method);
    }
    session.client = client;
    return session;
  }
}
