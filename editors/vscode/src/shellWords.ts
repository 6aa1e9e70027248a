/** Splitting a command line into words the way a POSIX shell would (no expansions but `~`). */
import { homedir } from 'node:os';

/**
 * The words of `line`: blanks separate words, single quotes keep everything, double quotes keep
 * all but `\"`, `\\`, `\$` and `` \` ``, a backslash outside quotes escapes the next character,
 * and a leading unquoted `~/` (or a lone `~`) is the home folder. Throws on an unclosed quote.
 */
export function splitCommand(line: string, home: string = homedir()): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line.charAt(i);
    if (quote === "'") {
      if (ch === "'") {
        quote = undefined;
      } else {
        word += ch;
      }
    } else if (quote === '"') {
      if (ch === '"') {
        quote = undefined;
      } else if (ch === '\\' && '"\\$`'.includes(line.charAt(i + 1)) && i + 1 < line.length) {
        word += line.charAt(++i);
      } else {
        word += ch;
      }
    } else if (/\s/.test(ch)) {
      if (inWord) {
        words.push(word);
      }
      word = '';
      inWord = false;
    } else {
      if (!inWord && ch === '~' && (i + 1 === line.length || /[\s/]/.test(line.charAt(i + 1)))) {
        word += home;
      } else if (ch === "'" || ch === '"') {
        quote = ch;
      } else if (ch === '\\' && i + 1 < line.length) {
        word += line.charAt(++i);
      } else {
        word += ch;
      }
      inWord = true;
    }
  }
  if (quote) {
    throw new Error(`unclosed ${quote} in: ${line}`);
  }
  if (inWord) {
    words.push(word);
  }
  return words;
}
