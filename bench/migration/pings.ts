// What a 10 ms ping from the lab client saw during one move (pure).
//
// The guest-visible downtime is the gap between replies that spans the switchover: the last reply
// before QEMU paused the guest and the first one after it ran on the target. Longer gaps can
// happen elsewhere in a move on this lab, and for every policy alike: the machine is itself a VM
// whose host takes back memory the lab frees (free page reporting) and hands it out again, and
// while it does, the whole machine stalls for 0.2-1 s (steal time; seen at the start of a move,
// when the previous source QEMU had just freed 4 GiB, and while a mirror fills the page cache).
// Those are reported apart, not as downtime.

export interface PingGaps {
  /** The gap that spans the switchover; the longest gap of the move when its time is unknown. */
  switchoverGapMs: number | undefined;
  /** The longest gap that does not span the switchover, and when it started (ms after `startMs`). */
  otherGapMs: number | undefined;
  otherGapAtMs: number | undefined;
}

/** `replies`: the times of the replies (ms, ascending); `switchoverAt`: when the guest was paused. */
export function pingGaps(
  replies: readonly number[],
  startMs: number,
  switchoverAt: number | undefined,
): PingGaps {
  let spanning: number | undefined;
  let other: { ms: number; at: number } | undefined;
  for (let i = 1; i < replies.length; i++) {
    const from = replies[i - 1] as number;
    const gap = { ms: (replies[i] as number) - from, at: from - startMs };
    if (switchoverAt !== undefined && from <= switchoverAt && switchoverAt < (replies[i] as number)) {
      spanning = gap.ms;
    } else if (other === undefined || gap.ms > other.ms) {
      other = gap;
    }
  }
  // Unknown switchover: no gap spans it, so `other` is the longest of all.
  if (switchoverAt === undefined) {
    return { switchoverGapMs: other?.ms, otherGapMs: undefined, otherGapAtMs: undefined };
  }
  return { switchoverGapMs: spanning, otherGapMs: other?.ms, otherGapAtMs: other?.at };
}
