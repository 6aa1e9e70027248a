/**
 * The documents the extension hands the language server: every file and unsaved buffer the
 * editor has open. The server reads a question's context and a completion's surroundings from
 * its synced copy (unsaved edits included), offers code actions anywhere, and checks only the
 * pipeline files among them.
 */

/** A document filter as vscode-languageclient takes it. */
export interface SchemeFilter {
  scheme: 'file' | 'untitled';
}

/** Files on disk and untitled buffers, whatever their language. */
export function documentSelector(): SchemeFilter[] {
  return [{ scheme: 'file' }, { scheme: 'untitled' }];
}
