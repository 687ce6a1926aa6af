/** A counting semaphore: at most `max` tasks run at once, the rest wait in FIFO order. */
export class Limiter {
  private running = 0;
  private readonly queue: Array<() => void> = [];
  readonly max: number;
  constructor(max: number) { this.max = max; }
  get active(): number { return this.running; }
  get waiting(): number { return this.queue.length; }
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) await new Promise<void>((resolve) => this.queue.push(resolve));
    this.running++;
    try { return await task(); } finally {
      this.running--;
      this.queue.shift()?.();
    }
  }
}
