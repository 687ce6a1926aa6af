/** A clock tests move by hand. Scheduled callbacks fire, in time order, when `advance` passes their due time. */
import type { Clock } from '../../core/clock.ts';

export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers = new Map<number, { due: number; fn: () => void }>();
  constructor(start = Date.UTC(2026, 10, 25, 12, 0, 0)) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  schedule(ms: number, fn: () => void): () => void {
    const id = ++this.seq;
    this.timers.set(id, { due: this.t + Math.max(0, ms), fn });
    return () => {
      this.timers.delete(id);
    };
  }
  /** Moves time forward by `ms`, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { due: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].due <= end && (!next || e[1].due < next[1].due)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].due);
      next[1].fn();
    }
    this.t = end;
  }
  get pending(): number {
    return this.timers.size;
  }
}
