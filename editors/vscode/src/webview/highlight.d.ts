/** highlight.js ships no typings for its core entry point; it is the same API without languages. */
declare module 'highlight.js/lib/core' {
  import hljs from 'highlight.js';
  export default hljs;
}
