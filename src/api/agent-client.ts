import { z } from 'zod';
import { JsonHttpClient } from './http.js';
import { Datastore, GuestExecResult, GuestInfo, HostInfo, Vm, VSwitch, type VmSpec } from './agent.js';

/** Typed client of one host agent's HTTP API. */
export class AgentClient {
  readonly http: JsonHttpClient;
  constructor(baseUrl: string, token: string, timeoutMs?: number) {
    this.http = new JsonHttpClient(baseUrl, token, timeoutMs);
  }

  host(): Promise<HostInfo> {
    return this.http.request('GET', '/v1/host', HostInfo);
  }
  datastores(): Promise<Datastore[]> {
    return this.http.request('GET', '/v1/datastores', z.array(Datastore));
  }
  vswitches(): Promise<VSwitch[]> {
    return this.http.request('GET', '/v1/vswitches', z.array(VSwitch));
  }
  listVms(): Promise<Vm[]> {
    return this.http.request('GET', '/v1/vms', z.array(Vm));
  }
  getVm(name: string): Promise<Vm> {
    return this.http.request('GET', `/v1/vms/${encodeURIComponent(name)}`, Vm);
  }
  createVm(spec: VmSpec): Promise<Vm> {
    return this.http.request('POST', '/v1/vms', Vm, spec, { timeoutMs: 300_000 });
  }
  startVm(name: string): Promise<Vm> {
    return this.http.request('POST', `/v1/vms/${encodeURIComponent(name)}/start`, Vm, {});
  }
  shutdownVm(name: string, timeoutSeconds = 60): Promise<Vm> {
    return this.http.request(
      'POST',
      `/v1/vms/${encodeURIComponent(name)}/shutdown`,
      Vm,
      { timeoutSeconds },
      {
        timeoutMs: (timeoutSeconds + 30) * 1000,
      },
    );
  }
  stopVm(name: string): Promise<Vm> {
    return this.http.request('POST', `/v1/vms/${encodeURIComponent(name)}/stop`, Vm, {});
  }
  async deleteVm(name: string, deleteDisks: boolean): Promise<void> {
    await this.http.raw('DELETE', `/v1/vms/${encodeURIComponent(name)}?deleteDisks=${deleteDisks}`);
  }
  guestExec(name: string, command: string[], timeoutSeconds = 30, detach = false): Promise<GuestExecResult> {
    return this.http.request(
      'POST',
      `/v1/vms/${encodeURIComponent(name)}/guest-exec`,
      GuestExecResult,
      { command, timeoutSeconds, detach },
      {
        timeoutMs: (timeoutSeconds + 30) * 1000,
      },
    );
  }
  guestInfo(name: string): Promise<GuestInfo> {
    return this.http.request('GET', `/v1/vms/${encodeURIComponent(name)}/guest`, GuestInfo);
  }
  async metrics(): Promise<string> {
    return (await this.http.raw('GET', '/metrics')).text();
  }
}
