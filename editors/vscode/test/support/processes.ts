/** Child processes of the tests: tracked, and all of them ended when the test process ends. */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

const children = new Set<ChildProcess>();

process.on('exit', () => {
  for (const child of children) {
    child.kill('SIGKILL');
  }
});

/** Spawns `command` and remembers it until it exits. */
export function spawnTracked(command: string, args: string[], options: SpawnOptions): ChildProcess {
  const child = spawn(command, args, options);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve(true);
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      resolve(false);
    }, ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Closes the child's stdin, then sends SIGTERM, then SIGKILL, until it has exited. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  child.stdin?.end();
  if (await exited(child, 2000)) {
    return;
  }
  child.kill('SIGTERM');
  if (!(await exited(child, 2000))) {
    child.kill('SIGKILL');
    await exited(child, 2000);
  }
}

/** Resolves once `predicate` holds; fails after `ms` naming `what`. */
export async function waitFor(predicate: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
