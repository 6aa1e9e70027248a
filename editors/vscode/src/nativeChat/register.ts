/**
 * Joins VS Code's own Chat where this VS Code has it: the `sage` models (Code 1.104+) and the
 * `@sage` participant (Code 1.90+). On an older Code nothing is registered and the Sage panel
 * stays the way to chat. Stop reaches the provider from Code 1.127 on; `@sage` with a `sage`
 * model talks to the server itself, so Stop works there on any version.
 */
import * as vscode from 'vscode';
import type { SageClient } from '../client';
import { errorLine } from '../errors';
import { Methods, type StatusChange } from '../protocol';
import { nativeChatFeatures, type NativeChatApi } from './chatApi';
import { VENDOR } from './models';
import { createSageParticipant, SAVE_PIPELINE_COMMAND, savePipeline } from './participant';
import { SageModelProvider } from './provider';

function yes(flag: boolean): string {
  return flag ? 'yes' : 'no';
}

/** Registers what this VS Code supports; everything registered is disposed with `context`. */
export function registerNativeChat(context: vscode.ExtensionContext, client: SageClient, output: vscode.OutputChannel): void {
  const features = nativeChatFeatures(vscode, vscode.version);
  output.appendLine(
    `native chat (Code ${vscode.version}): @sage ${yes(features.participant)}, sage models ${yes(features.provider)}, ` +
      `Stop reaches the sage models ${yes(features.providerStop)}`,
  );
  const api = vscode as unknown as NativeChatApi;
  let provider: SageModelProvider | undefined;
  try {
    if (features.provider) {
      const models = new SageModelProvider(client, api);
      context.subscriptions.push(models, api.lm.registerLanguageModelChatProvider(VENDOR, models));
      provider = models;
      // Resolving the models makes VS Code select one, so the first `@sage` request has a model.
      const select = (): void => {
        api.lm.selectChatModels({ vendor: VENDOR }).then(
          (found) => { output.appendLine(`sage models: ${found.map((model) => model.name).join(', ') || 'none'}`); },
          (error: unknown) => { output.appendLine(`sage models: ${errorLine(error)}`); },
        );
      };
      context.subscriptions.push(
        client.onDidStart(() => { models.refresh(); select(); }),
        client.onNotification(Methods.statusDidChange, (change: StatusChange) => { models.statusChanged(change); }),
      );
      select();
    }
    if (features.participant) {
      context.subscriptions.push(
        createSageParticipant(api, client, provider ? (id) => provider?.overrideFor(id) : undefined),
        vscode.commands.registerCommand(SAVE_PIPELINE_COMMAND, (fileName: string, yaml: string) => savePipeline(fileName, yaml)),
      );
    }
  } catch (error) {
    // The panel works without native chat: report, do not fail the activation.
    output.appendLine(`native chat not available: ${errorLine(error)}`);
  }
}
