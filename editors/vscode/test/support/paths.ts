/** Where the tests find the extension, the repository, the server command and the Python. */
import * as path from 'node:path';
import { splitCommand } from '../../src/shellWords';

/** editors/vscode (the bundled tests run from out/test). */
export const extensionRoot = path.resolve(__dirname, '..', '..');

/** The sage-lsp repository. */
export const repoRoot = path.resolve(extensionRoot, '..', '..');

/** Where screenshots go. */
export const resultsDir = path.join(extensionRoot, 'test-results');

function fromExtensionRoot(program: string): string {
  return program.includes('/') ? path.resolve(extensionRoot, program) : program;
}

/** `sage lsp` from $SAGE_LSP_COMMAND (shell-split), by default the repository's virtualenv. */
export function sageLspCommand(): string[] {
  const [program = '', ...args] = splitCommand(process.env.SAGE_LSP_COMMAND ?? '../../.venv/bin/sage lsp');
  return [fromExtensionRoot(program), ...args];
}

/** The Python that runs tests.support.openai_server ($SAGE_PYTHON). */
export function sagePython(): string {
  return fromExtensionRoot(process.env.SAGE_PYTHON ?? '../../.venv/bin/python');
}
