/** An `EditorActions` that records what the panel asked the editor to do. */
import type { EditorActions } from '../../src/chatController';

/** Every call, as `[action, argument]`. */
export class RecordingEditor implements EditorActions {
  readonly calls: [string, string][] = [];

  copy(code: string): Promise<void> {
    this.calls.push(['copy', code]);
    return Promise.resolve();
  }

  insert(code: string): Promise<void> {
    this.calls.push(['insert', code]);
    return Promise.resolve();
  }

  openSource(path: string): Promise<void> {
    this.calls.push(['openSource', path]);
    return Promise.resolve();
  }

  /** The URI's last path segment, as a workspace of one folder would show a top-level file. */
  relativePath(uri: string): string {
    return uri.slice(uri.lastIndexOf('/') + 1);
  }
}
