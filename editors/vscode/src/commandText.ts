/** Texts the commands build: the question about a selection, a pipeline's file name. */

/** `question` followed by `code` in a fenced block tagged with `languageId`. */
export function questionAboutCode(question: string, languageId: string, code: string): string {
  const longestRun = Math.max(2, ...Array.from(code.matchAll(/`+/g), (match) => match[0].length));
  const fence = '`'.repeat(longestRun + 1);
  const body = code.endsWith('\n') ? code : `${code}\n`;
  return `${question.trim()}\n\n${fence}${languageId}\n${body}${fence}`;
}

/** A file name for a pipeline described by `description`: its first words, `*.sage.yaml`. */
export function pipelineFileName(description: string): string {
  const words = description.toLowerCase().match(/[a-z0-9]+/g) ?? [];
  const stem = words.slice(0, 5).join('-') || 'pipeline';
  return `${stem}.sage.yaml`;
}
