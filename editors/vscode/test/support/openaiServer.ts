/** The repository's OpenAI-compatible test server (tests.support.openai_server) as a child process. */
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot, sagePython } from './paths';
import { spawnTracked, stopProcess } from './processes';

/** One streamed response as the server saw it. */
export interface StreamRecord {
  chunksSent: number;
  completed: boolean;
  clientGone: boolean;
}

/** A running test server. */
export interface OpenAIServer {
  /** `http://127.0.0.1:PORT/v1` */
  baseUrl: string;
  /** The streams it served so far. */
  streams(): Promise<StreamRecord[]>;
  /** The bodies of the requests it was sent so far (`messages` of each chat). */
  requests(): Promise<{ messages?: { role: string; content: string }[] }[]>;
  /** Whether the client closed the latest stream within `timeoutMs` (polled every 50 ms). */
  waitForClientGone(timeoutMs?: number): Promise<boolean>;
  stop(): Promise<void>;
}

/** Starts the server with `args` (`--delay`, `--repeat`, `--answer`) and waits for its URL. */
export async function startOpenAIServer(args: string[]): Promise<OpenAIServer> {
  const child = spawnTracked(sagePython(), ['-m', 'tests.support.openai_server', ...args], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const stdout = child.stdout;
  if (!stdout) {
    throw new Error('the openai test server has no stdout');
  }
  const lines = createInterface({ input: stdout });
  const baseUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error('the openai test server printed no URL in 15 s'));
    }, 15_000);
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolve(line.trim());
    });
    child.once('exit', (code) => {
      reject(new Error(`the openai test server exited (${String(code)})`));
    });
  });
  const origin = new URL(baseUrl).origin;
  const streams = async (): Promise<StreamRecord[]> => {
    const response = await fetch(`${origin}/_test/streams`);
    return ((await response.json()) as { streams: StreamRecord[] }).streams;
  };
  return {
    baseUrl,
    streams,
    async requests() {
      const response = await fetch(`${origin}/_test/requests`);
      return ((await response.json()) as { requests: Awaited<ReturnType<OpenAIServer['requests']>> }).requests;
    },
    async waitForClientGone(timeoutMs = 2500) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if ((await streams()).at(-1)?.clientGone === true) {
          return true;
        }
        if (Date.now() >= deadline) {
          return false;
        }
        await sleep(50);
      }
    },
    async stop() {
      lines.close();
      await stopProcess(child);
    },
  };
}
