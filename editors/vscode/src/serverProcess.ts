/** What a server process left behind when it ended: its exit and the end of its stderr. */

/** Keeps the last lines of a stream. */
export class StderrTail {
  private text = '';

  constructor(private readonly lines = 20) {}

  /** Adds what the stream wrote. */
  push(data: Buffer | string): void {
    this.text = (this.text + data.toString()).split('\n').slice(-(this.lines + 1)).join('\n');
  }

  /** The last `count` non-blank lines. */
  last(count: number): string[] {
    return this.text
      .split('\n')
      .map((line) => line.trimEnd())
      .filter((line) => line.trim() !== '')
      .slice(-count);
  }
}

/**
 * One line saying how a server process ended, with the last lines of its stderr:
 * `the server exited with code 2: error: unknown option --bad`.
 */
export function exitDescription(code: number | null, signal: string | null, stderr: StderrTail): string {
  const how = code !== null ? `exited with code ${code}` : `was killed by ${signal ?? 'a signal'}`;
  const tail = stderr.last(3).map((line) => line.trim()).join(' / ');
  return tail ? `the server ${how}: ${tail}` : `the server ${how}`;
}
