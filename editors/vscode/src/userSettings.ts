/**
 * The `sage` settings sent to the server: only the keys the person set (user, workspace or
 * folder), never VS Code's defaults (the server has its own, and some values differ in meaning:
 * an `index` of null turns retrieval off), and never the extension's own `server.*` keys.
 */

/** The settings the server takes, as VS Code names them under `sage.` (dotted keys nest). */
const PROTOCOL_KEYS = [
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
  'vllm.python',
  'vllm.extraArgs',
  'vllm.startupTimeoutSeconds',
  'vllm.tensorParallelSize',
  'vllm.serveAdapter',
] as const;

/** What `WorkspaceConfiguration.inspect` reports for one key (the parts used here). */
export interface InspectedSetting {
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

/** A JSON object of settings, `vllm` nested. */
export type SettingsObject = Record<string, unknown>;

/**
 * The settings the person set, nested as the protocol wants them (`{vllm: {python}}`). The most
 * specific scope wins; an empty string counts as not set.
 */
export function userSettings(inspect: (key: string) => InspectedSetting | undefined): SettingsObject {
  const settings: SettingsObject = {};
  for (const key of PROTOCOL_KEYS) {
    const inspected = inspect(key);
    const value = inspected?.workspaceFolderValue ?? inspected?.workspaceValue ?? inspected?.globalValue;
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
