/** The documents the extension hands the language server: pipeline files, as the server sees them. */
import { PipelineFiles } from './protocol';

/** A document filter as vscode-languageclient takes it. */
export interface FileFilter {
  scheme: 'file';
  pattern: string;
  language?: string;
}

/** Pipeline plans: a pipeline suffix (`*.sage.yaml`, `*.sage.yml`) anywhere, YAML under `pipelines/`. */
export function pipelineSelector(): FileFilter[] {
  return [
    ...PipelineFiles.suffixes.map((suffix): FileFilter => ({ scheme: 'file', pattern: `**/*${suffix}` })),
    { scheme: 'file', language: 'yaml', pattern: `**/${PipelineFiles.folder}/**` },
  ];
}
