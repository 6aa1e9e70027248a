/** What a user does in the workbench of code-server: the command palette, notifications, the status bar, the chat panel. */
import type { FrameLocator, Locator, Page } from 'playwright-core';

/** Runs a command from the palette (F1) by its title, as a user would. */
export async function runCommand(page: Page, title: string): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input.input');
  await input.waitFor();
  await input.fill(`>${title}`);
  const row = page.locator('.quick-input-list .monaco-list-row').filter({ hasText: title }).first();
  await row.waitFor();
  await row.click();
}

/**
 * Answers the quick input titled `title` (an input box or the simple file dialog) with `text`,
 * or with its value.
 */
export async function answerInput(page: Page, title: string | RegExp, text?: string): Promise<void> {
  const widget = page.locator('.quick-input-widget').filter({ hasText: title });
  await widget.waitFor();
  const input = widget.locator('input.input');
  if (text !== undefined) {
    await input.fill(text);
  }
  await page.keyboard.press('Enter');
}

/** A notification (toast) whose message matches `text`. */
export function notification(page: Page, text: string | RegExp): Locator {
  return page.locator('.notification-toast .notification-list-item-message').filter({ hasText: text });
}

/** Every notification message shown so far (toasts and the notification centre). */
export async function notificationTexts(page: Page): Promise<string[]> {
  return page.locator('.notification-list-item-message').allTextContents();
}

/** The Sage item of the status bar whose text matches `text`. */
export function statusItem(page: Page, text: string | RegExp): Locator {
  return page.locator('#workbench\\.parts\\.statusbar .statusbar-item').filter({ hasText: text });
}

/** The chat panel's document (a webview: two nested iframes). */
export function chatPanel(page: Page): FrameLocator {
  return page.frameLocator('iframe.webview.ready').frameLocator('iframe#active-frame');
}

/** An editor tab whose label matches `name`. */
export function editorTab(page: Page, name: string | RegExp): Locator {
  return page.locator('.tabs-container .tab').filter({ hasText: name });
}

/** Opens a workspace file with Quick Open (Ctrl+P). */
export async function openFile(page: Page, name: string): Promise<void> {
  await page.keyboard.press('Control+P');
  const input = page.locator('.quick-input-widget input.input');
  await input.waitFor();
  await input.fill(name);
  await page.locator('.quick-input-list .monaco-list-row').filter({ hasText: name }).first().click();
  await editorTab(page, name).waitFor();
}
