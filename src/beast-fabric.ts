// The fabric the Beast's lab tests run on (placement*.lab.test.ts): a manager and three lab
// agents, host3 of class `fast`, the others limited like a SAN tier (as `lab up --beast host3`
// makes them). At the root because it joins two parts: the manager and the agent's lab agents.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ManagerClient, type DatastoreLimits } from './api/index.js';
import { startLabAgent, type LabAgent } from './agent/index.js';
import { startManager } from './manager/index.js';
import { STANDARD_TIER_LIMITS } from './lab/index.js';

export const BEAST_FABRIC_HOSTS = ['host1', 'host2', 'host3'] as const;
export type BeastFabricHost = (typeof BEAST_FABRIC_HOSTS)[number];

export interface BeastFabric {
  api: ManagerClient;
  agents: Map<BeastFabricHost, LabAgent>;
  /** Stops the VMs named, the manager and the agents, and removes what they wrote. */
  close(vms: readonly string[]): Promise<void>;
}

/** `beastLimits`: the Beast's own limits (none by default: it is the fast one). */
export async function startBeastFabric(
  prefix: string,
  token: string,
  beastLimits?: DatastoreLimits,
): Promise<BeastFabric> {
  const dataDir = await mkdtemp(path.join(tmpdir(), `${prefix}manager-`));
  const manager = await startManager({
    dataDir,
    statsIntervalSeconds: 2,
    reconcileIntervalSeconds: 2,
    log: () => {},
  });
  const api = new ManagerClient(manager.url, manager.adminToken ?? '');
  const agents = new Map<BeastFabricHost, LabAgent>();
  const close = async (vms: readonly string[]) => {
    await manager.close();
    for (const agent of agents.values())
      for (const vm of vms) await agent.client.stopVm(vm).catch(() => undefined);
    for (const agent of agents.values()) await agent.close();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    for (const hostName of BEAST_FABRIC_HOSTS) {
      const agent = await startLabAgent({ prefix: `${prefix}${hostName}-`, hostName, token });
      agents.set(hostName, agent);
      await api.addHost({ address: `127.0.0.1:${new URL(agent.client.http.baseUrl).port}`, token });
    }
    await api.updateDatastore('host3', 'ds1', {
      class: 'fast',
      ...(beastLimits ? { limits: beastLimits } : {}),
    });
    for (const host of ['host1', 'host2'])
      await api.updateDatastore(host, 'ds1', { limits: STANDARD_TIER_LIMITS });
  } catch (error) {
    await close([]);
    throw error;
  }
  return { api, agents, close };
}
