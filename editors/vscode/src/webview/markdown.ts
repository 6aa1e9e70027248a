/**
 * Markdown for answers: markdown-it with raw HTML off (so nothing the model writes becomes
 * markup), code highlighted by highlight.js, and Copy / Insert buttons on each code block.
 */
import MarkdownIt from 'markdown-it';
import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import c from 'highlight.js/lib/languages/c';
import cpp from 'highlight.js/lib/languages/cpp';
import css from 'highlight.js/lib/languages/css';
import go from 'highlight.js/lib/languages/go';
import java from 'highlight.js/lib/languages/java';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import markdown from 'highlight.js/lib/languages/markdown';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import shell from 'highlight.js/lib/languages/shell';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';

const languages = { bash, c, cpp, css, go, java, javascript, json, markdown, python, rust, shell, sql, typescript, xml, yaml };
for (const [name, language] of Object.entries(languages)) {
  hljs.registerLanguage(name, language);
}

const md: MarkdownIt = new MarkdownIt({
  html: false,
  linkify: true,
  highlight(code, lang) {
    return lang && hljs.getLanguage(lang) ? hljs.highlight(code, { language: lang, ignoreIllegals: true }).value : '';
  },
});

const renderFence = md.renderer.rules.fence?.bind(md.renderer.rules);
md.renderer.rules.fence = (tokens, idx, options, env, self) => {
  const lang = tokens[idx]?.info.trim().split(/\s+/)[0] ?? '';
  const label = lang ? `<span class="code-lang">${md.utils.escapeHtml(lang)}</span>` : '';
  const code = renderFence ? renderFence(tokens, idx, options, env, self) : self.renderToken(tokens, idx, options);
  return (
    '<div class="code-block"><div class="code-actions">' +
    label +
    '<button type="button" data-action="copy" aria-label="Copy code">Copy</button>' +
    '<button type="button" data-action="insert" aria-label="Insert code at the cursor">Insert</button>' +
    `</div>${code}</div>`
  );
};

/** `text` as sanitised HTML. */
export function renderMarkdown(text: string): string {
  return md.render(text);
}
