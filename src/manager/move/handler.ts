// The `vm-move` job: a live or a cold move of a VM to another host, each driven by its own class
// through the frame every move job shares (runMove). Apart from job.ts so that the live and the
// cold move both build on job.ts without importing each other.
import type { JobHandler } from '../jobs.js';
import { ColdMove } from './cold-job.js';
import { Checkpoint, freshCheckpoint, Move, moveJobHandler, MoveParams, type MoveDeps } from './job.js';

export function moveHandler(deps: MoveDeps): JobHandler<MoveParams> {
  return moveJobHandler(deps, {
    kind: 'vm-move',
    params: MoveParams,
    checkpoint: Checkpoint,
    hostIds: (p) => [p.sourceHostId, p.targetHostId],
    build(ctx, stored, [sourceHost, targetHost], checkpoint) {
      if (!sourceHost || !targetHost) throw new Error('a host move needs its two hosts');
      const start = checkpoint ?? freshCheckpoint();
      const move =
        ctx.params.mode === 'cold'
          ? new ColdMove(deps, ctx, stored, sourceHost, targetHost, start)
          : new Move(deps, ctx, stored, sourceHost, targetHost, start);
      return { move, driver: move.driver(), keptSource: ctx.params.keepSource };
    },
  });
}
