/**
 * The server's life without VS Code: requests as they go on the wire (issue 12, bug 1), a server
 * that exits at start (bug 2), starts one at a time from the settings of their time (bug 3).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import {
  CancellationTokenSource,
  createMessageConnection,
  StreamMessageReader,
  StreamMessageWriter,
  type Message,
} from 'vscode-jsonrpc/node';
import { ChatController } from '../src/chatController';
import { request, type SageConnection } from '../src/connection';
import { errorLine } from '../src/errors';
import { Methods, type BackendStatus } from '../src/protocol';
import { requestArguments, ServerLifecycle, StartSuperseded, type ManagedClient } from '../src/serverLifecycle';
import { exitDescription, StderrTail } from '../src/serverProcess';
import { sagePython } from './support/paths';
import { startSageServer, type SageServer } from './support/sageServer';
import { RecordingEditor } from './support/stubEditor';

/** The JSON-RPC messages one vscode-jsonrpc connection writes, as they go on the wire. */
function wireRecorder(): { send: (method: string, ...args: unknown[]) => void; messages: Message[]; dispose: () => void } {
  const wire = new PassThrough();
  const sender = createMessageConnection(new StreamMessageReader(new PassThrough()), new StreamMessageWriter(wire));
  sender.listen();
  const messages: Message[] = [];
  const reader = new StreamMessageReader(wire);
  reader.listen((message) => messages.push(message));
  return {
    // LanguageClient.sendRequest(type, ...params) hands its arguments to this same call.
    send: (method, ...args) => void sender.sendRequest(method, ...args).catch(() => undefined),
    messages,
    dispose: () => {
      sender.dispose();
      reader.dispose();
    },
  };
}

async function nextTick(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 20));
}

describe('requests without a cancellation token', () => {
  let server: SageServer;

  before(async () => {
    server = await startSageServer({ initializationOptions: { backend: 'mock' } });
  });

  after(async () => {
    await server.stop();
  });

  it('go on the wire with their params as an object (an undefined token made them [params, null])', async () => {
    const recorder = wireRecorder();
    recorder.send(Methods.backendStatus, ...requestArguments({}, undefined));
    recorder.send(Methods.chatReset, ...requestArguments({ chatId: 'c' }, new CancellationTokenSource().token));
    recorder.send(Methods.backendStop, {}, undefined); // what SageClient.sendRequest did
    await nextTick();
    recorder.dispose();
    assert.deepEqual(
      recorder.messages.map((message) => (message as { params?: unknown }).params),
      [{}, { chatId: 'c' }, [{}, null]],
    );
  });

  it('are answered by sage lsp, which refused the old form with -32602', async () => {
    const status = await server.connection.sendRequest<BackendStatus>(Methods.backendStatus, ...requestArguments({}, undefined));
    assert.equal(status.backend, 'mock');
    await assert.rejects(
      server.connection.sendRequest(Methods.backendStatus, {}, undefined),
      (error: { code?: number; message?: string }) => error.code === -32602 && (error.message ?? '').includes('params must be an object'),
    );
  });

  it('go out as an object through request(), typed by the Requests map', async () => {
    const [status, { services }] = await Promise.all([
      request(server.connection, Methods.backendStatus, {}),
      request(server.connection, Methods.services, {}),
    ]);
    assert.equal(status.backend, 'mock');
    assert.ok(Array.isArray(services));
  });
});

/** A client whose start the test ends; it records the order of events. */
class FakeClient implements ManagedClient {
  running = false;
  aborted = false;
  private settle: { resolve: () => void; reject: (error: Error) => void } | undefined;
  readonly started: Promise<void>;

  constructor(
    readonly command: string,
    private readonly log: string[],
  ) {
    this.started = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
  }

  start(): Promise<void> {
    this.log.push(`start ${this.command}`);
    return this.started.then(() => {
      this.running = true;
    });
  }

  succeed(): void {
    this.settle?.resolve();
  }

  fail(message: string): void {
    this.settle?.reject(new Error(message));
  }

  stop(): Promise<void> {
    this.log.push(`stop ${this.command}`);
    this.running = false;
    return Promise.resolve();
  }

  isRunning(): boolean {
    return this.running;
  }

  abort(): void {
    this.aborted = true;
    this.fail('aborted');
  }
}

describe('server lifecycle', () => {
  function setup(): { lifecycle: ServerLifecycle<FakeClient>; clients: FakeClient[]; log: string[]; settings: { command: string } } {
    const log: string[] = [];
    const clients: FakeClient[] = [];
    const settings = { command: 'sage lsp' };
    const lifecycle = new ServerLifecycle(() => {
      const client = new FakeClient(settings.command, log);
      clients.push(client);
      return client;
    });
    return { lifecycle, clients, log, settings };
  }

  it('reads the server command when the start runs, and never runs two servers at once', async () => {
    const { lifecycle, clients, log, settings } = setup();
    const first = lifecycle.start();
    await nextTick();
    // The settings arrive while the first server starts: their change restarts it.
    settings.command = '/venv/bin/sage lsp';
    const second = lifecycle.start();
    await assert.rejects(first, StartSuperseded);
    assert.equal(clients[0]?.aborted, true, 'the first start was ended');
    await nextTick();
    clients[1]?.succeed();
    await second;
    assert.deepEqual(log, ['start sage lsp', 'stop sage lsp', 'start /venv/bin/sage lsp']);
    assert.equal((await lifecycle.running()).command, '/venv/bin/sage lsp');
    assert.deepEqual(
      clients.map((client) => client.running),
      [false, true],
    );
  });

  it('coalesces a burst of restarts into one server, started last', async () => {
    const { lifecycle, clients, settings } = setup();
    const starts = ['a', 'b', 'c'].map((command) => {
      settings.command = command;
      return lifecycle.start().catch((error: unknown) => error);
    });
    await nextTick();
    for (const client of clients) {
      client.succeed();
    }
    const outcomes = await Promise.all(starts);
    assert.ok(outcomes[0] instanceof StartSuperseded);
    assert.ok(outcomes[1] instanceof StartSuperseded);
    assert.equal(outcomes[2], undefined);
    assert.equal(clients.filter((client) => client.running).length, 1);
    assert.equal((await lifecycle.running()).command, 'c');
  });

  it('makes requests wait for the start, and fail with why the server did not start', async () => {
    const { lifecycle, clients } = setup();
    const start = lifecycle.start();
    const request = lifecycle.running();
    await nextTick();
    clients[0]?.fail('the server exited with code 3: boom');
    await assert.rejects(start, /exited with code 3/);
    await assert.rejects(request, { message: 'the language server did not start (the server exited with code 3: boom)' });
  });

  it('stops the server it started', async () => {
    const { lifecycle, clients, log } = setup();
    const start = lifecycle.start();
    await nextTick();
    clients[0]?.succeed();
    await start;
    await lifecycle.stop();
    assert.deepEqual(log, ['start sage lsp', 'stop sage lsp']);
    await assert.rejects(lifecycle.running(), /not running/);
  });
});

describe('a server that exits at start', () => {
  it('is described by its exit code and the end of its stderr', async () => {
    const tail = new StderrTail();
    const child = spawn(sagePython(), ['-c', 'import sys; print("loading", file=sys.stderr); print("error: no such option --bad", file=sys.stderr); sys.exit(3)']);
    child.stderr.on('data', (data: Buffer) => { tail.push(data); });
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
      child.once('close', (exitCode, exitSignal) => { resolve([exitCode, exitSignal]); });
    });
    assert.equal(exitDescription(code, signal, tail), 'the server exited with code 3: loading / error: no such option --bad');
    assert.equal(exitDescription(null, 'SIGKILL', new StderrTail()), 'the server was killed by SIGKILL');
  });

  it('turns a question into a visible failed turn that says so', async () => {
    const lifecycle = new ServerLifecycle(() => {
      const client = new FakeClient('sage lsp', []);
      client.fail('the server exited with code 3: boom');
      return client;
    });
    await lifecycle.start().catch(() => undefined);
    // What SageClient does with each request: wait for the server, then send.
    const connection: SageConnection = {
      sendRequest: async () => {
        await lifecycle.running();
        throw new Error('unreachable');
      },
      onNotification: () => ({ dispose: () => undefined }),
    };
    const controller = new ChatController(connection, new RecordingEditor());
    const end = await controller.ask('Are you there?');
    assert.equal(end?.type, 'failed');
    const turn = controller.current.turns[0];
    assert.equal(turn?.question, 'Are you there?');
    assert.equal(turn.status, 'error');
    assert.equal(turn.error, 'the language server did not start (the server exited with code 3: boom)');
    assert.equal(errorLine(new Error(turn.error)), turn.error);
  });
});
