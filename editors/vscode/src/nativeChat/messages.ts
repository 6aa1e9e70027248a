/**
 * VS Code's chat messages turned into the one `message` of a `sage/chat` request, and the cheap
 * local token estimate the provider answers `provideTokenCount` with.
 */
import { Role, type RequestMessage } from './chatApi';

/** A message reduced to its role and text. */
export interface PlainMessage {
  role: 'user' | 'assistant' | 'system';
  text: string;
}

/** The text of a content part: a text part's `value`, a tool result's text parts; nothing for the rest (tool calls, data). */
export function partText(part: unknown): string {
  if (typeof part === 'string') {
    return part;
  }
  if (typeof part !== 'object' || part === null) {
    return '';
  }
  const { value, content } = part as { value?: unknown; content?: unknown };
  if (typeof value === 'string') {
    return value;
  }
  return Array.isArray(content) ? content.map(partText).join('') : '';
}

function roleOf(role: number): PlainMessage['role'] {
  return role === Role.assistant ? 'assistant' : role === Role.user ? 'user' : 'system';
}

/** VS Code's messages as role and text, the empty ones left out. */
export function plainMessages(messages: readonly RequestMessage[]): PlainMessage[] {
  return messages
    .map((message) => ({ role: roleOf(message.role), text: message.content.map(partText).join('') }))
    .filter((message) => message.text.trim() !== '');
}

const HEADINGS: Record<PlainMessage['role'], string> = { system: 'Instructions', user: 'User', assistant: 'Assistant' };

/**
 * The `message` of one `sage/chat` request (a fresh conversation on the server each time, so
 * nothing is remembered twice): the last user message as it is when it is all there is;
 * otherwise the earlier messages (instructions, turns) under headings, then that last user
 * message. Messages after the last user message are dropped.
 */
export function foldMessages(messages: readonly PlainMessage[]): string {
  const last = messages.map((message) => message.role).lastIndexOf('user');
  const question = messages[last];
  if (!question) {
    throw new Error('the request holds no user message');
  }
  const earlier = messages.slice(0, last);
  if (earlier.length === 0) {
    return question.text;
  }
  const parts = earlier.map((message) => `### ${HEADINGS[message.role]}\n\n${message.text.trim()}`);
  return `The conversation so far:\n\n${parts.join('\n\n')}\n\n### Answer this\n\n${question.text.trim()}`;
}

/** About one token per four characters: what `provideTokenCount` answers, without asking the server. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/** The estimate for a string or a message. */
export function countTokens(input: string | RequestMessage): number {
  return estimateTokens(typeof input === 'string' ? input : input.content.map(partText).join(''));
}
