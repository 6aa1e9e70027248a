/**
 * The `sage` vendor's models for VS Code's model picker: the active backend's model and the
 * finetuned models of the store, and the per-turn backend override a store model needs.
 */
import type { BackendStatus, ModelInfo } from '../protocol';
import type { ModelInformation } from './chatApi';

/** The vendor the provider registers (package.json `languageModelChatProviders`). */
export const VENDOR = 'sage';

/** The id of the model that is whatever backend the settings choose. */
export const ACTIVE_MODEL_ID = 'sage-active';

const FINETUNE_PREFIX = 'sage-finetune:';

/** Token limits VS Code budgets its prompt with; the server trims history to `historyTokens` itself. */
export const MAX_INPUT_TOKENS = 32768;
export const MAX_OUTPUT_TOKENS = 4096;

/** The picker id of the store's finetuned model `name`. */
export function finetuneModelId(name: string): string {
  return `${FINETUNE_PREFIX}${name}`;
}

/** The store model a picker id names, if it names one. */
export function finetuneNameOf(id: string): string | undefined {
  return id.startsWith(FINETUNE_PREFIX) ? id.slice(FINETUNE_PREFIX.length) || undefined : undefined;
}

/** Whether the store model `name` is the one the active backend serves. */
function isActive(name: string, status: BackendStatus | undefined, activeFinetune: string | undefined): boolean {
  return status?.backend === 'finetune' && (activeFinetune ?? status.model) === name;
}

const STATE_TEXT: Record<ModelInfo['state'], string> = {
  merged: 'merged',
  adapter: 'LoRA adapter',
  checkpoints: 'checkpoints only',
};

/**
 * The models to offer: first the active backend's (when the server answered its status), then
 * each finetuned model of the store that it is not. `activeFinetune` is `sage.finetuneModel`.
 * Each advertises tool calling, which the picker requires in agent mode; the tools are ignored.
 */
export function modelList(status: BackendStatus | undefined, store: readonly ModelInfo[], activeFinetune?: string): ModelInformation[] {
  const base = { maxInputTokens: MAX_INPUT_TOKENS, maxOutputTokens: MAX_OUTPUT_TOKENS, capabilities: { toolCalling: true, imageInput: false } };
  const models: ModelInformation[] = [];
  if (status) {
    const model = status.backend === 'finetune' ? (activeFinetune ?? status.model) : status.model;
    const label = model && model !== status.backend ? `${status.backend}: ${model}` : status.backend;
    models.push({
      ...base,
      id: ACTIVE_MODEL_ID,
      name: `Sage (${label})`,
      family: status.backend,
      version: model ?? status.backend,
      detail: status.state,
      tooltip: `The model of the backend set in the Sage settings (${label}), answered through sage-lsp.`,
    });
  }
  for (const entry of store) {
    if (isActive(entry.name, status, activeFinetune)) {
      continue;
    }
    models.push({
      ...base,
      id: finetuneModelId(entry.name),
      name: `Sage finetune: ${entry.name}`,
      family: 'finetune',
      version: entry.baseModel ?? entry.name,
      detail: STATE_TEXT[entry.state],
      tooltip: `Finetuned model ${entry.name}${entry.baseModel ? ` (from ${entry.baseModel})` : ''}, served by a vLLM that sage-lsp launches.`,
    });
  }
  return models;
}

/**
 * The `backend` override of `sage/chat` for the picker model `id`: none for the active model
 * (or a store model the active backend already serves), `{backend: "finetune", finetuneModel}`
 * for another store model. An id that is neither is an error.
 */
export function backendOverride(id: string, status: BackendStatus | undefined, activeFinetune?: string): Record<string, string> | undefined {
  if (id === ACTIVE_MODEL_ID) {
    return undefined;
  }
  const name = finetuneNameOf(id);
  if (name === undefined) {
    throw new Error(`unknown Sage model ${id}`);
  }
  return isActive(name, status, activeFinetune) ? undefined : { backend: 'finetune', finetuneModel: name };
}
