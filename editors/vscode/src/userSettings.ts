/**
 * The `sage` settings sent to the server: only the keys the person set (user, workspace or
 * folder), never VS Code's defaults (the server has its own, and some values differ in meaning:
 * an `index` of null turns retrieval off), and never the extension's own `server.*` keys.
 *
 * In an untrusted workspace the settings that choose what runs and where chats and keys go
 * (package.json's `restrictedConfigurations`) take the user's value only: a cloned repository
 * cannot point the server at its own program or send the person's questions and API key to
 * its own endpoint.
 */
import manifest from '../package.json';

/** The settings the server takes, as VS Code names them under `sage.` (dotted keys nest). */
export const PROTOCOL_KEYS = [
  'backend',
  'model',
  'baseUrl',
  'apiKey',
  'finetuneModel',
  'finetunePort',
  'index',
  'topK',
  'sageHome',
  'keepAliveSeconds',
  'logLevel',
  'systemPrompt',
  'historyTokens',
  'maxTokens',
  'requestTimeoutSeconds',
  'contextTokens',
  'completion.enabled',
  'completion.maxTokens',
  'completion.prefixLines',
  'completion.suffixLines',
  'completion.fimTemplate',
  'vllm.python',
  'vllm.extraArgs',
  'vllm.startupTimeoutSeconds',
  'vllm.tensorParallelSize',
  'vllm.serveAdapter',
] as const;

/**
 * The keys (under `sage.`) whose workspace and folder values an untrusted workspace cannot set:
 * package.json's `capabilities.untrustedWorkspaces.restrictedConfigurations`.
 */
export const RESTRICTED_KEYS: ReadonlySet<string> = new Set(
  manifest.capabilities.untrustedWorkspaces.restrictedConfigurations.map((key) => key.replace(/^sage\./, '')),
);

/** What `WorkspaceConfiguration.inspect` reports for one key (the parts used here). */
export interface InspectedSetting {
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

/** A JSON object of settings, `vllm` nested. */
export type SettingsObject = Record<string, unknown>;

/**
 * The value the person set for `key` (under `sage.`): the most specific scope wins, except that
 * in an untrusted workspace a restricted key has only its user (global) value.
 */
export function settingValue(key: string, inspected: InspectedSetting | undefined, trusted: boolean): unknown {
  if (!trusted && RESTRICTED_KEYS.has(key)) {
    return inspected?.globalValue;
  }
  return inspected?.workspaceFolderValue ?? inspected?.workspaceValue ?? inspected?.globalValue;
}

/**
 * The settings the person set, nested as the protocol wants them (`{vllm: {python}}`), as
 * {@link settingValue} reads them; an empty string counts as not set.
 */
export function userSettings(inspect: (key: string) => InspectedSetting | undefined, trusted: boolean): SettingsObject {
  const settings: SettingsObject = {};
  for (const key of PROTOCOL_KEYS) {
    const value = settingValue(key, inspect(key), trusted);
    if (value === undefined || value === null || (typeof value === 'string' && value.trim() === '')) {
      continue;
    }
    const [outer, inner] = key.split('.') as [string, string | undefined];
    if (inner === undefined) {
      settings[outer] = value;
    } else {
      const group = (settings[outer] ??= {}) as SettingsObject;
      group[inner] = value;
    }
  }
  return settings;
}
