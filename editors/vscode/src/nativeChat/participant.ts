/**
 * The `@sage` chat participant. A question goes to the model picked in the Chat view: a `sage`
 * model is asked through the server directly (retrieval on, the server conversation continued,
 * sources shown as references); another vendor's model gets the history and the question.
 * `/pipeline` builds a SAGE pipeline (YAML shown, a button writes the file); `/explain` explains
 * the active selection, attached as a reference.
 */
import { randomUUID } from 'node:crypto';
import * as vscode from 'vscode';
import type { SageConnection } from '../connection';
import { pipelineFileName, questionAboutCode } from '../commandText';
import { errorLine } from '../errors';
import { contextRef } from '../editorContext';
import { Methods, type BuildPipelineParams, type ContextRef } from '../protocol';
import type { ChatContext, ChatParticipant, ChatRequest, ChatResultLike, NativeChatApi, ResponseStream, Token } from './chatApi';
import { foldMessages } from './messages';
import { VENDOR } from './models';
import {
  chatIdFromHistory,
  followupsFor,
  historyMessages,
  PARTICIPANT_ID,
  pipelineMarkdown,
  routeCommand,
  shortenedNote,
  sourcesWithoutFile,
  type TurnMetadata,
} from './participantText';
import { sendLinked, streamChat } from './stream';

/** The command behind `/pipeline`'s button: `(fileName, yaml)`. */
export const SAVE_PIPELINE_COMMAND = 'sage.nativeChat.savePipeline';

/** Attached text is cut after this many characters. */
const MAX_ATTACHED_CHARS = 20000;

/** The backend override for a `sage` picker model; none when the provider is not registered. */
export type OverrideFor = (modelId: string) => Record<string, string> | undefined;

/** The file or part of a file a reference attaches (`#file`, `#selection`, the implicit context), if it is one. */
function attachedLocation(value: unknown): vscode.Location | undefined {
  if (value instanceof vscode.Location) {
    return value;
  }
  return value instanceof vscode.Uri ? new vscode.Location(value, new vscode.Position(0, 0)) : undefined;
}

/** The files and selections attached to `request`. */
function attachedLocations(request: ChatRequest): vscode.Location[] {
  return request.references.flatMap((reference) => attachedLocation(reference.value) ?? []);
}

/** The range a location attaches: none for a whole file (a `#file` is a location at its start). */
function attachedRange(location: vscode.Location): vscode.Range | undefined {
  return location.range.isEmpty ? undefined : location.range;
}

/** Each location as a reference the server reads, with the diagnostics VS Code shows there. */
function contextOf(locations: readonly vscode.Location[]): ContextRef[] {
  return locations.map((location) => contextRef(location.uri.toString(), attachedRange(location), vscode.languages.getDiagnostics(location.uri)));
}

/** `question` followed by the code of each location, pasted: for a model of another vendor, which sees only what is sent. */
async function withPastedCode(question: string, locations: readonly vscode.Location[]): Promise<string> {
  let text = question;
  for (const location of locations) {
    const document = await vscode.workspace.openTextDocument(location.uri);
    const range = attachedRange(location);
    const code = document.getText(range).slice(0, MAX_ATTACHED_CHARS);
    text = questionAboutCode(`${text}\n\n${vscode.workspace.asRelativePath(location.uri)}:`, document.languageId, code);
  }
  return text;
}

/** Opens a file the server cited, as a reference under the answer. */
function showSources(response: ResponseStream, sources: { uri?: string }[]): void {
  for (const source of sources) {
    if (source.uri) {
      response.reference(vscode.Uri.parse(source.uri));
    }
  }
}

class SageParticipant {
  constructor(
    private readonly connection: SageConnection,
    private readonly api: NativeChatApi,
    private readonly overrideFor: OverrideFor | undefined,
  ) {}

  async handle(request: ChatRequest, context: ChatContext, response: ResponseStream, token: Token): Promise<ChatResultLike> {
    const route = routeCommand(request.command);
    const metadata: TurnMetadata = { route, prompt: request.prompt };
    try {
      switch (route) {
        case 'pipeline':
          return await this.pipeline(request.prompt, metadata, response, token);
        case 'explain':
          return await this.explain(request, context, metadata, response, token);
        case 'chat':
          return await this.answer(request.prompt, attachedLocations(request), request, context, metadata, response, token);
      }
    } catch (error) {
      return { errorDetails: { message: errorLine(error) }, metadata: { ...metadata } };
    }
  }

  /** `/explain`: the code attached to the request (VS Code attaches the selection), else the active editor's selection. */
  private async explain(request: ChatRequest, context: ChatContext, metadata: TurnMetadata, response: ResponseStream, token: Token): Promise<ChatResultLike> {
    const prompt = request.prompt.trim() || 'Explain this code.';
    const attached = attachedLocations(request);
    if (attached.length > 0) {
      return this.answer(prompt, attached, request, context, metadata, response, token);
    }
    const editor = vscode.window.activeTextEditor;
    if (!editor || editor.selection.isEmpty) {
      response.markdown('Select some code in an editor first (or attach it with `#selection` or `#file`), then ask `@sage /explain` again.');
      return { metadata: { ...metadata, route: 'chat', prompt: '' } };
    }
    return this.answer(prompt, [new vscode.Location(editor.document.uri, editor.selection)], request, context, metadata, response, token);
  }

  /**
   * Answers `question` about the code at `locations` (each shown as a reference) with the picked
   * model: the server reads that code itself; another vendor's model gets it pasted.
   */
  private async answer(
    question: string,
    locations: readonly vscode.Location[],
    request: ChatRequest,
    context: ChatContext,
    metadata: TurnMetadata,
    response: ResponseStream,
    token: Token,
  ): Promise<ChatResultLike> {
    for (const location of locations) {
      response.reference(attachedRange(location) ? location : location.uri);
    }
    const model = request.model;
    if (model && model.vendor !== VENDOR) {
      const pasted = await withPastedCode(question, locations);
      const messages = [...historyMessages(context.history), { role: 'user' as const, text: pasted }].map((message) =>
        message.role === 'assistant' ? this.api.LanguageModelChatMessage.Assistant(message.text) : this.api.LanguageModelChatMessage.User(message.text),
      );
      const reply = await model.sendRequest(messages, {}, token);
      for await (const fragment of reply.text) {
        response.markdown(fragment);
      }
      return { metadata: { ...metadata } };
    }
    // A sage model (or none picked): the server answers, with retrieval, in its own conversation.
    const continued = chatIdFromHistory(context.history);
    const chatId = continued ?? `vscode-chat-${randomUUID()}`;
    const earlier = continued ? [] : historyMessages(context.history);
    const message = earlier.length ? foldMessages([...earlier, { role: 'user', text: question }]) : question;
    const backend = model && this.overrideFor ? this.overrideFor(model.id) : undefined;
    const attached = contextOf(locations);
    const params = { message, chatId, ...(attached.length ? { context: attached } : {}), ...(backend ? { backend } : {}) };
    const result = await streamChat(this.connection, params, (delta) => { response.markdown(delta); }, token);
    if (result) {
      showSources(response, result.sources);
      const notes = sourcesWithoutFile(result.sources) + shortenedNote(result.context ?? [], (uri) => vscode.workspace.asRelativePath(vscode.Uri.parse(uri)));
      if (notes) {
        response.markdown(notes);
      }
    }
    return { metadata: { ...metadata, chatId } };
  }

  /** `/pipeline DESCRIPTION`: the pipeline's YAML and a button that writes it. */
  private async pipeline(description: string, metadata: TurnMetadata, response: ResponseStream, token: Token): Promise<ChatResultLike> {
    if (!description.trim()) {
      response.markdown('Describe the pipeline after `/pipeline`, for example `@sage /pipeline answer questions about our docs with retrieval`.');
      return { metadata: { ...metadata, route: 'chat', prompt: '' } };
    }
    response.progress('Building the pipeline…');
    const params: BuildPipelineParams = { description };
    const result = await sendLinked(this.connection, Methods.buildPipeline, params, token);
    response.markdown(pipelineMarkdown(result));
    response.button({ command: SAVE_PIPELINE_COMMAND, title: 'Save as a pipeline file', arguments: [pipelineFileName(description), result.yaml] });
    return { metadata: { ...metadata, pipelineValid: result.valid } };
  }
}

/**
 * The button's command: writes `yaml` to `pipelines/FILE_NAME` in the first workspace folder
 * (a save dialog when there is none, or when that file exists) and opens it.
 */
export async function savePipeline(fileName: string, yaml: string): Promise<void> {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
  let target = folder ? vscode.Uri.joinPath(folder, 'pipelines', fileName) : undefined;
  const exists = target ? await vscode.workspace.fs.stat(target).then(() => true, () => false) : false;
  if (!target || exists) {
    target = await vscode.window.showSaveDialog({
      title: 'Save the pipeline as',
      ...(target ? { defaultUri: target } : {}),
      filters: { 'SAGE pipeline': ['yaml', 'yml'] },
    });
    if (!target) {
      return;
    }
  }
  await vscode.workspace.fs.writeFile(target, new TextEncoder().encode(yaml));
  await vscode.window.showTextDocument(target);
  void vscode.window.showInformationMessage(`Sage: pipeline written to ${vscode.workspace.asRelativePath(target)}.`);
}

/** Creates `@sage`. */
export function createSageParticipant(api: NativeChatApi, connection: SageConnection, overrideFor: OverrideFor | undefined): ChatParticipant {
  const participant = new SageParticipant(connection, api, overrideFor);
  const chat = api.chat.createChatParticipant(PARTICIPANT_ID, (request, context, response, token) => participant.handle(request, context, response, token));
  chat.followupProvider = { provideFollowups: (result) => followupsFor(result) };
  return chat;
}
