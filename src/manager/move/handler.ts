// The `vm-move` job: a live or a cold move of a VM to another host, each driven by its own class
// through the frame every move job shares (runMove). Apart from job.ts so that the live and the
// cold move both build on job.ts without importing each other.
import { getVm, hostRow } from '../inventory.js';
import type { JobHandler } from '../jobs.js';
import { ColdMove } from './cold-job.js';
import { Checkpoint, freshCheckpoint, Move, MoveParams, runMove, type MoveDeps } from './job.js';

export function moveHandler(deps: MoveDeps): JobHandler<MoveParams> {
  return {
    kind: 'vm-move',
    params: MoveParams,
    resumable: true,
    async run(ctx) {
      const saved = Checkpoint.safeParse(ctx.checkpoint);
      const checkpoint = saved.success ? saved.data : undefined;
      const start = checkpoint ?? freshCheckpoint();
      const [sourceHost, targetHost] = await Promise.all([
        hostRow(deps.db, ctx.params.sourceHostId),
        hostRow(deps.db, ctx.params.targetHostId),
      ]);
      const stored = await getVm(deps.db, ctx.params.vmId);
      return runMove(deps, ctx, [sourceHost, targetHost], checkpoint, () => {
        const move =
          ctx.params.mode === 'cold'
            ? new ColdMove(deps, ctx, stored, sourceHost, targetHost, start)
            : new Move(deps, ctx, stored, sourceHost, targetHost, start);
        return { move, driver: move.driver(), keptSource: ctx.params.keepSource };
      });
    },
  };
}
