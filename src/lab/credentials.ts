/*
 * Stand-in for enrollment (issue 28): until the manager enrolls agents, `lab up` makes a fabric
 * CA in the lab's own directory and writes each host's credentials into `<stateDir>/tls` in the
 * layout enrollment will write, so the lab's moves run as users' do (TLS on the QEMU hops by
 * default). To be replaced by the manager's enrollment.
 */
import path from 'node:path';
import { createFabricCa, issueHostCredentials, moveTlsDir } from '../api/index.js';
import type { LabState } from './store.js';

/** The lab's stand-in CA directory (key 0600 in a 0700 directory). */
export const labCaDir = (state: Pick<LabState, 'dir'>): string => path.join(state.dir, 'fabric-ca');

/** A CA for the lab and each host's TLS directory, before the agents start. */
export async function issueLabHostCredentials(state: Pick<LabState, 'dir' | 'hosts'>): Promise<void> {
  const ca = labCaDir(state);
  await createFabricCa(ca, `silobreak lab CA ${path.basename(state.dir)}`);
  for (const host of state.hosts)
    await issueHostCredentials(ca, moveTlsDir(host.stateDir), { name: host.name, ip: host.fabricAddress });
}
