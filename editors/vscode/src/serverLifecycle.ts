/**
 * The language server's life, without VS Code: one start, restart or stop at a time, each start
 * creating its client (reading the settings) only when its turn comes, and a start that a newer
 * one replaced never reported. Requests wait for the latest start.
 */

/** The part of a language client the lifecycle drives. */
export interface ManagedClient {
  start(): Promise<void>;
  stop(timeout?: number): Promise<void>;
  isRunning(): boolean;
  /** Ends a start under way (its `start()` then rejects). */
  abort?(): void;
}

/** Thrown to the caller of a start that a newer start replaced before it ended. */
export class StartSuperseded extends Error {
  constructor() {
    super('a newer start of the language server replaced this one');
    this.name = 'StartSuperseded';
  }
}

/** Starts, restarts and stops clients in order; at most one client exists at a time. */
export class ServerLifecycle<C extends ManagedClient> {
  private queue: Promise<unknown> = Promise.resolve();
  private latestStart: Promise<C> | undefined;
  private generation = 0;
  private current: C | undefined;
  private startInFlight = false;

  /**
   * `create` builds a client from the settings as they are when the start runs (not when it was
   * asked for); `started` is told of each client that started and is still the latest.
   */
  constructor(
    private readonly create: () => C,
    private readonly started: (client: C) => void = () => undefined,
  ) {}

  /** The client now (running, starting or failed), if any. */
  get client(): C | undefined {
    return this.current;
  }

  /**
   * Stops the current client, if any, then creates and starts a new one. Resolves once it runs;
   * rejects with why it did not start, or with {@link StartSuperseded} when a newer start (or a
   * stop) was asked for meanwhile.
   */
  start(): Promise<void> {
    const generation = this.supersede();
    const run = this.enqueue(async () => {
      await this.stopCurrent();
      if (generation !== this.generation) {
        throw new StartSuperseded();
      }
      const client = this.create();
      this.current = client;
      this.startInFlight = true;
      try {
        await client.start();
      } catch (error) {
        // A start ended (aborted) because a newer one was asked for is not a failure to report.
        throw generation === this.generation ? error : new StartSuperseded();
      } finally {
        this.startInFlight = false;
      }
      if (generation !== this.generation) {
        throw new StartSuperseded();
      }
      this.started(client);
      return client;
    });
    this.latestStart = run;
    return run.then(() => undefined);
  }

  /** Stops the current client (after any start under way). */
  stop(): Promise<void> {
    this.supersede();
    this.latestStart = undefined;
    return this.enqueue(() => this.stopCurrent());
  }

  /** The running client, once the latest start ended; rejects with why it is not running. */
  async running(): Promise<C> {
    const latest = this.latestStart;
    if (latest) {
      try {
        await latest;
      } catch (error) {
        if (!(error instanceof StartSuperseded)) {
          throw new Error(`the language server did not start (${error instanceof Error ? error.message : String(error)})`);
        }
        return this.running(); // the newer start is the latest now
      }
    }
    const client = this.current;
    if (!client?.isRunning()) {
      throw new Error('the Sage language server is not running (see the "Sage" output)');
    }
    return client;
  }

  /** A new generation; a start under way (a server that never answers, say) is ended. */
  private supersede(): number {
    if (this.startInFlight) {
      this.current?.abort?.();
    }
    return ++this.generation;
  }

  private enqueue<T>(step: () => Promise<T>): Promise<T> {
    const run = this.queue.then(step, step);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async stopCurrent(): Promise<void> {
    const client = this.current;
    this.current = undefined;
    // A client whose start failed may still hold a process: stop it whatever its state.
    await client?.stop(3000).catch(() => undefined);
  }
}

/**
 * The arguments that follow the method of a request: the token only when there is one.
 * vscode-jsonrpc counts an `undefined` token as a second parameter and sends `[params, null]`,
 * which the server refuses (-32602 "params must be an object").
 */
export function requestArguments(params: unknown, token: { isCancellationRequested: boolean } | undefined): unknown[] {
  return token ? [params, token] : [params];
}
