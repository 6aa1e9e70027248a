/**
 * A real VS Code for the end-to-end tests: code-server (installed by scripts/install-code-server.sh
 * into .code-server/ at the repository root) with its own user data and extensions folders, the
 * packaged extension installed, and Debian's Chromium driving its workbench through playwright-core.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { CHROMIUM } from '../support/panelPage';
import { extensionRoot, repoRoot } from '../support/paths';
import { closedPort } from '../support/ports';

/** Where `make code-server` installs code-server and its Node ($SAGE_CODE_SERVER_DIR). */
export const codeServerDir = process.env.SAGE_CODE_SERVER_DIR ?? path.join(repoRoot, '.code-server');
const node = path.join(codeServerDir, 'node', 'bin', 'node');
const entry = path.join(codeServerDir, 'code-server', 'out', 'node', 'entry.js');

/** The packaged extension (`make vscode`). */
export const vsix = path.join(extensionRoot, 'sage-lsp-0.1.0.vsix');

/** Screenshots of failed tests. */
export const artifactsDir = path.join(repoRoot, 'test-artifacts', 'vscode-e2e');

/** Why the end-to-end tests cannot run here, or undefined when they can. */
export function missingPrerequisite(): string | undefined {
  if (!existsSync(path.join(codeServerDir, '.installed'))) {
    return `code-server is not installed in ${codeServerDir} (make code-server)`;
  }
  if (!existsSync(vsix)) {
    return `${vsix} is missing (make vscode)`;
  }
  if (!existsSync(CHROMIUM)) {
    return `${CHROMIUM} is missing (make browser)`;
  }
  return undefined;
}

/** Chromium's flags: headless, offline, nothing in the background. */
const BROWSER_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** Settings every test window gets (quiet, offline, no welcome page). */
const BASE_SETTINGS: Record<string, unknown> = {
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'telemetry.telemetryLevel': 'off',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'update.mode': 'none',
  'security.workspace.trust.enabled': false,
  'files.simpleDialog.enable': true,
  'window.dialogStyle': 'custom',
  'chat.commandCenter.enabled': false,
};

/** One process: its id, parent and command line. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  argv: string[];
}

function processInfo(pid: number): ProcessInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((arg) => arg !== '');
    return { pid, ppid: Number(fields[1]), argv };
  } catch {
    return undefined;
  }
}

/** The live descendants of `root` (not `root` itself). */
export function descendants(root: number): ProcessInfo[] {
  const all = readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map((name) => processInfo(Number(name)))
    .filter((info): info is ProcessInfo => info !== undefined);
  const found: ProcessInfo[] = [];
  const parents = new Set([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const info of all) {
      if (parents.has(info.ppid) && !parents.has(info.pid)) {
        parents.add(info.pid);
        found.push(info);
        grew = true;
      }
    }
  }
  return found;
}

/** Whether `pid` is still running (a zombie counts as ended). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

/** A running code-server with its folders. */
export interface CodeServer {
  url: string;
  process: ChildProcess;
  /** The folder it opens. */
  workspace: string;
  /** The temp folder holding everything of this run. */
  root: string;
  /** What code-server printed (its last 200 lines). */
  log(): string;
  /** Replaces Sage's settings (in the Remote settings). */
  writeSettings(settings: Record<string, unknown>): void;
  /** The processes code-server started (extension hosts, `sage lsp`, …). */
  tree(): ProcessInfo[];
  stop(): Promise<void>;
}

/** The environment of code-server: XDG folders inside `root`, no telemetry, no `sage` on PATH. */
function environment(root: string): NodeJS.ProcessEnv {
  const venvBin = path.join(repoRoot, '.venv', 'bin');
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.VSCODE_IPC_HOOK_CLI;
  return {
    ...env,
    PATH: (process.env.PATH ?? '/usr/bin:/bin')
      .split(':')
      .filter((dir) => path.resolve(dir) !== venvBin)
      .join(':'),
    XDG_CONFIG_HOME: path.join(root, 'xdg', 'config'),
    XDG_DATA_HOME: path.join(root, 'xdg', 'data'),
    XDG_CACHE_HOME: path.join(root, 'xdg', 'cache'),
    XDG_STATE_HOME: path.join(root, 'xdg', 'state'),
    npm_config_cache: path.join(root, 'npm-cache'),
    HOME: path.join(root, 'home'),
  };
}

function lastLines(text: string, count: number): string {
  return text.split('\n').slice(-count).join('\n');
}

/**
 * Starts code-server on a free 127.0.0.1 port with the extension installed from the .vsix and
 * `settings` as the user settings, opening `workspace` (a new folder under the run's temp folder
 * filled with `files`).
 */
export async function startCodeServer(settings: Record<string, unknown>, files: Record<string, string>): Promise<CodeServer> {
  const root = mkdtempSync(path.join(tmpdir(), 'sage-code-server-'));
  const userData = path.join(root, 'user-data');
  const extensions = path.join(root, 'extensions');
  const workspace = path.join(root, 'workspace');
  for (const dir of [userData, extensions, workspace, path.join(root, 'home')]) {
    mkdirSync(dir, { recursive: true });
  }
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(workspace, file)), { recursive: true });
    writeFileSync(path.join(workspace, file), text);
  }
  const env = environment(root);
  const common = ['--user-data-dir', userData, '--extensions-dir', extensions];
  const install = spawnSync(node, [entry, ...common, '--install-extension', vsix], { env, encoding: 'utf8', timeout: 120_000 });
  if (install.status !== 0) {
    rmSync(root, { recursive: true, force: true });
    throw new Error(`code-server --install-extension failed (${String(install.status)}):\n${install.stdout}\n${install.stderr}`);
  }
  // code-server's window is a remote one: it ignores the machine-scoped settings of the User
  // settings (sage.server.command, sage.sageHome) and reads them from the Remote settings
  // (Machine/settings.json), where a code-server user puts them. The workbench's own settings go
  // in the User settings, once; Sage's in the Remote settings, so a change is one file written.
  const userFile = path.join(userData, 'User', 'settings.json');
  const machineFile = path.join(userData, 'Machine', 'settings.json');
  mkdirSync(path.dirname(userFile), { recursive: true });
  mkdirSync(path.dirname(machineFile), { recursive: true });
  writeFileSync(userFile, JSON.stringify(BASE_SETTINGS, null, 2));
  const writeSettings = (values: Record<string, unknown>): void => {
    writeFileSync(machineFile, JSON.stringify(values, null, 2));
  };
  writeSettings(settings);

  const port = await closedPort();
  const child = spawn(
    node,
    [
      entry,
      ...common,
      '--auth', 'none',
      '--bind-addr', `127.0.0.1:${port}`,
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--reconnection-grace-time', '30',
      workspace,
    ],
    // Its own process group: stop() ends code-server and everything it started.
    { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let output = '';
  const collect = (data: Buffer): void => {
    output = lastLines(output + data.toString(), 200);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const url = `http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`code-server exited with ${child.exitCode}:\n${output}`);
    }
    const up = await fetch(`http://127.0.0.1:${port}/healthz`).then((response) => response.ok, () => false);
    if (up) {
      break;
    }
    if (Date.now() > deadline) {
      try {
        process.kill(-(child.pid ?? 0), 'SIGKILL');
      } catch {
        // already gone
      }
      rmSync(root, { recursive: true, force: true });
      throw new Error(`code-server did not listen on ${port} in 60 s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const pid = child.pid ?? 0;
  const killGroup = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-pid, signal);
    } catch {
      // the group has ended
    }
  };
  process.on('exit', () => {
    killGroup('SIGKILL');
  });
  return {
    url,
    process: child,
    workspace,
    root,
    log: () => output,
    writeSettings,
    tree: () => descendants(pid),
    async stop() {
      // The extension hosts and `sage lsp` may outlive code-server in its group: all of it goes.
      const started = [pid, ...descendants(pid).map((info) => info.pid)];
      killGroup('SIGTERM');
      const until = Date.now() + 5000;
      while (started.some(alive) && Date.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      killGroup('SIGKILL');
      for (const other of started.filter(alive)) {
        try {
          process.kill(other, 'SIGKILL');
        } catch {
          // gone
        }
      }
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Debian's Chromium, headless. */
export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: BROWSER_ARGS, headless: true });
}

/** A new window (page) of the workbench, once the workbench is shown. */
export async function openWindow(browser: Browser | BrowserContext, server: CodeServer): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(server.url);
  await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
  return page;
}
