/** Job kinds that move a VM; while one runs, reconciliation leaves that VM's row to it. */
export const MOVE_JOB_KINDS = ['vm-move', 'vm-move-storage'] as const;
