/**
 * The `@sage` participant's decisions and texts, apart from VS Code: which slash command runs,
 * which conversation continues, what the history says, the follow-ups, the pipeline and sources
 * shown. Nothing here imports `vscode`.
 */
import { attachedChips } from '../editorContext';
import type { AttachedContext, BuildPipelineResult, Source } from '../protocol';
import type { ChatResultLike, Followup, HistoryTurn } from './chatApi';
import type { PlainMessage } from './messages';

/** The participant's id (package.json `chatParticipants`); people call it `@sage`. */
export const PARTICIPANT_ID = 'sage-lsp.sage';

/** What a request does. */
export type Route = 'chat' | 'pipeline' | 'explain';

/** The route of a request's slash command (`/pipeline`, `/explain`; none or another: chat). */
export function routeCommand(command: string | undefined): Route {
  return command === 'pipeline' || command === 'explain' ? command : 'chat';
}

/** What the participant keeps in `ChatResult.metadata`. */
export interface TurnMetadata {
  route: Route;
  /** The prompt as the person typed it. */
  prompt: string;
  /** The server conversation the answer belongs to (answers by a `sage` model). */
  chatId?: string;
  /** The pipeline's state (after `/pipeline`). */
  pipelineValid?: boolean;
}

function metadataOf(result: ChatResultLike | undefined): Partial<TurnMetadata> {
  return result?.metadata ?? {};
}

/** The server conversation of the latest `@sage` answer in `history` that has one, to continue. */
export function chatIdFromHistory(history: readonly HistoryTurn[]): string | undefined {
  for (let i = history.length - 1; i >= 0; i--) {
    const turn = history[i];
    if (turn?.participant === PARTICIPANT_ID && turn.result) {
      const { chatId } = metadataOf(turn.result);
      if (typeof chatId === 'string' && chatId) {
        return chatId;
      }
    }
  }
  return undefined;
}

/** The Markdown text of a response part (`ChatResponseMarkdownPart`: `value` is a MarkdownString). */
function responsePartText(part: unknown): string {
  const value = (part as { value?: unknown } | undefined)?.value;
  if (typeof value === 'string') {
    return value;
  }
  const markdown = (value as { value?: unknown } | undefined)?.value;
  return typeof markdown === 'string' ? markdown : '';
}

/** The earlier turns as messages (for a model of another vendor, which sees only what is sent). */
export function historyMessages(history: readonly HistoryTurn[]): PlainMessage[] {
  const messages: PlainMessage[] = [];
  for (const turn of history) {
    const text = turn.response ? turn.response.map(responsePartText).join('') : (turn.prompt ?? '');
    if (text.trim()) {
      messages.push({ role: turn.response ? 'assistant' : 'user', text });
    }
  }
  return messages;
}

/** A fence longer than any run of backticks in `text`. */
function fenceFor(text: string): string {
  const longest = Math.max(2, ...Array.from(text.matchAll(/`+/g), (match) => match[0].length));
  return '`'.repeat(longest + 1);
}

/** What `/pipeline` shows: the pipeline's name and state, its warnings, the YAML. */
export function pipelineMarkdown(result: BuildPipelineResult): string {
  const state = result.valid ? 'valid' : 'not valid';
  const lines = [`Pipeline **${result.name}** (${state}, ${result.attempts} attempt(s)):`, ''];
  for (const error of result.errors) {
    lines.push(`- ${error}`);
  }
  if (result.errors.length > 0) {
    lines.push('');
  }
  const yaml = result.yaml.endsWith('\n') ? result.yaml : `${result.yaml}\n`;
  const fence = fenceFor(yaml);
  lines.push(`${fence}yaml`, yaml + fence);
  return lines.join('\n');
}

/** The sources the server knows no file for, as a Markdown list (those with a file are shown as references). */
export function sourcesWithoutFile(sources: readonly Source[]): string {
  const rest = sources.filter((source) => !source.uri);
  if (rest.length === 0) {
    return '';
  }
  const items = rest.map((source) => `- [${source.n}] ${source.title}${source.heading ? ` — ${source.heading}` : ''} (\`${source.path}\`)`);
  return `\n\nSources:\n${items.join('\n')}`;
}

/** A line naming the attached code the server shortened to fit its budget (`contextTokens`); empty when none was. */
export function shortenedNote(attached: readonly AttachedContext[], relativePath: (uri: string) => string): string {
  const shortened = attachedChips(attached, relativePath).filter((chip) => chip.truncated);
  if (shortened.length === 0) {
    return '';
  }
  const names = shortened.map((chip) => `\`${chip.label}\``).join(', ');
  return `\n\n_Shortened to fit the context budget (\`sage.contextTokens\`): ${names}._`;
}

/** The follow-ups offered under an answer (none after a failure). */
export function followupsFor(result: ChatResultLike): Followup[] {
  if (result.errorDetails) {
    return [];
  }
  const meta = metadataOf(result);
  switch (meta.route) {
    case 'pipeline':
      return meta.pipelineValid === false && meta.prompt
        ? [{ prompt: meta.prompt, command: 'pipeline', label: 'Build the pipeline again' }]
        : [{ prompt: 'Explain this pipeline stage by stage.', label: 'Explain the pipeline' }];
    case 'explain':
      return [
        { prompt: 'How could this code be improved?', label: 'Suggest improvements' },
        { prompt: 'Write unit tests for this code.', label: 'Write tests' },
      ];
    case 'chat':
      return [
        { prompt: 'Show a complete, runnable example.', label: 'Show an example' },
        ...(meta.prompt ? [{ prompt: meta.prompt, command: 'pipeline', label: 'Build a pipeline for this' }] : []),
      ];
    default:
      return [];
  }
}
