// Which policy moves the VM next (pure). Each move goes the other way, and the two lab hosts are
// not alike (a move to host2 showed ~100-150 ms more ping gap and up to 1.5 x the total time for
// every policy), so each policy must move about as often in each direction or the comparison
// measures the direction, not the policy.
import type { MoveRun, Policy } from './model.js';

/**
 * Of the policies still due in this run (`due`, in the run's turn order), the one that has moved
 * `from` -> `to` least often compared with the other way; ties go to the earlier turn. Only
 * completed moves count: they are what the table summarises.
 */
export function nextPolicy(
  due: readonly Policy[],
  done: readonly MoveRun[],
  from: string,
  to: string,
): Policy {
  const lead = (policy: Policy): number => {
    let n = 0;
    for (const run of done) {
      if (run.policy !== policy || run.outcome !== 'completed') continue;
      if (run.from === from && run.to === to) n += 1;
      else if (run.from === to && run.to === from) n -= 1;
    }
    return n;
  };
  let best: Policy | undefined;
  let bestLead = Infinity;
  for (const policy of due) {
    const l = lead(policy);
    if (l < bestLead) {
      best = policy;
      bestLead = l;
    }
  }
  if (best === undefined) throw new Error('no policy is due');
  return best;
}
