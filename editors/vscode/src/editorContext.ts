/**
 * The editor context a question carries (`context` of `sage/chat`): documents referenced by URI
 * and range, with the diagnostics shown there, and the chips the panel shows for what the
 * server attached (`path:lines`, marked when shortened). Nothing here imports `vscode`: the
 * shapes below are the parts of VS Code's `Range` and `Diagnostic` that are read.
 */
import type { AttachedContext, ContextRef } from './protocol';

/** A position as VS Code and LSP both spell it (0-based line and character). */
export interface PositionLike {
  readonly line: number;
  readonly character: number;
}

/** A range as VS Code and LSP both spell it. */
export interface RangeLike {
  readonly start: PositionLike;
  readonly end: PositionLike;
}

/** The parts of a `vscode.Diagnostic` the server is told. */
export interface DiagnosticLike {
  readonly range: RangeLike;
  readonly message: string;
  /** VS Code's `DiagnosticSeverity`: Error 0, Warning 1, Information 2, Hint 3. */
  readonly severity: number;
  readonly source?: string | undefined;
  readonly code?: string | number | { readonly value: string | number } | undefined;
}

/** What the panel shows for one attached document. */
export interface AttachedChip {
  /** `path:first-last` (or `path` for a whole document). */
  label: string;
  /** The document, opened by a click. */
  uri: string;
  /** The server shortened it to fit the `contextTokens` budget. */
  truncated: boolean;
}

function position(at: PositionLike): PositionLike {
  return { line: at.line, character: at.character };
}

/** `range` as a plain LSP Range (VS Code's `Range` carries more than the wire needs). */
export function lspRange(range: RangeLike): RangeLike {
  return { start: position(range.start), end: position(range.end) };
}

/** Whether two ranges share at least a position (a diagnostic touching the selection). */
function touches(a: RangeLike, b: RangeLike): boolean {
  const before = (x: PositionLike, y: PositionLike): boolean => x.line < y.line || (x.line === y.line && x.character < y.character);
  return !before(a.end, b.start) && !before(b.end, a.start);
}

/** A VS Code diagnostic as LSP sends one (severity counts from 1 there). */
function lspDiagnostic(diagnostic: DiagnosticLike): NonNullable<ContextRef['diagnostics']>[number] {
  const code = typeof diagnostic.code === 'object' ? diagnostic.code.value : diagnostic.code;
  return {
    range: lspRange(diagnostic.range),
    message: diagnostic.message,
    severity: (diagnostic.severity + 1) as 1 | 2 | 3 | 4,
    ...(diagnostic.source ? { source: diagnostic.source } : {}),
    ...(code !== undefined ? { code } : {}),
  };
}

/**
 * The reference to `range` of the document `uri` (the whole document when absent), with those
 * of `diagnostics` that touch it.
 */
export function contextRef(uri: string, range: RangeLike | undefined, diagnostics: readonly DiagnosticLike[] = []): ContextRef {
  const shown = diagnostics.filter((diagnostic) => !range || touches(diagnostic.range, range)).map(lspDiagnostic);
  return { uri, ...(range ? { range: lspRange(range) } : {}), ...(shown.length ? { diagnostics: shown } : {}) };
}

/** `path:first-last` in 1-based lines; a range that ends at the start of a line stops on the line above. */
export function contextLabel(path: string, range: RangeLike | undefined | null): string {
  if (!range) {
    return path;
  }
  const first = range.start.line + 1;
  const last = range.end.character === 0 && range.end.line > range.start.line ? range.end.line : range.end.line + 1;
  return first === last ? `${path}:${first}` : `${path}:${first}-${last}`;
}

/** The chips for what was attached; `relativePath` names a URI as the workspace does. */
export function attachedChips(attached: readonly (AttachedContext | ContextRef)[], relativePath: (uri: string) => string): AttachedChip[] {
  return attached.map((item) => ({
    label: contextLabel(relativePath(item.uri), item.range),
    uri: item.uri,
    truncated: 'truncated' in item && item.truncated,
  }));
}
