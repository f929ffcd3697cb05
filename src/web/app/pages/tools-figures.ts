// The words and figures of the tools page: why a VM's guest tools need attention, and how old a
// retained copy is and when it expires. Pure, with unit tests (tools-figures.test.ts).
import { seconds } from '../format.js';

/** The tools statuses that need a person: an older agent, none, or one that went silent. */
export const ATTENTION = ['outdated', 'missing', 'not-answering'] as const;
export type Attention = (typeof ATTENTION)[number];

/** What a VM's tools status asks of the admin, in one line. */
export function toolsAdvice(tools: {
  status: string | null;
  installed: string | null;
  current: string | null;
}): string {
  switch (tools.status) {
    case 'outdated':
      return `guest agent ${tools.installed ?? '?'} is older than the host's ${tools.current ?? '?'}: insert the tools disk and run install.sh from it in the guest`;
    case 'missing':
      return tools.current
        ? `no guest agent has answered since the VM started: insert the tools disk (${tools.current}) and install it in the guest`
        : 'no guest agent has answered since the VM started, and its host has no tools disk (silobreak guest build makes one)';
    case 'not-answering':
      return `the guest agent${tools.installed ? ` ${tools.installed}` : ''} answered earlier but is silent now: check it in the guest`;
    default:
      return '';
  }
}

/** "3.0 d ago"-style age of a copy from when its VM left the host. */
export function copyAge(departedAt: string, now: number): string {
  return `${seconds(Math.max(0, (now - Date.parse(departedAt)) / 1000))}`;
}

/** When a copy expires, relative to now: "in 2.5 d", or "expired 3 min ago" once past. */
export function expiryText(expiresAt: string, now: number): string {
  const left = (Date.parse(expiresAt) - now) / 1000;
  if (!Number.isFinite(left)) return expiresAt;
  return left >= 0 ? `in ${seconds(left)}` : `expired ${seconds(-left)} ago`;
}

/** The datastores a copy's images are on, each once, sorted. */
export function copyDatastores(datastores: Readonly<Record<string, string>>): string[] {
  return [...new Set(Object.values(datastores))].sort();
}
