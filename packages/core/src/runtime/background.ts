/**
 * Work that nobody awaits where it starts — timer rounds, task rebuilds, hand-off failures — but
 * that `stop()` and the TestDriver's settling wait for. A failure is logged, never thrown: there is
 * nobody to throw it to.
 */
export class BackgroundWork {
  readonly #running = new Set<Promise<void>>();

  constructor(
    private readonly log: (message: string, fields: Record<string, unknown>) => void,
    /** Called after each piece of work ends (the scheduler arms its timer again). */
    private readonly ended: () => void,
  ) {}

  run(work: Promise<void> | (() => Promise<void>), failure = 'background work failed'): void {
    const tracked: Promise<void> = (typeof work === 'function' ? work() : work)
      .catch((error: unknown) => this.log(failure, { error: String(error) }))
      .finally(() => {
        this.#running.delete(tracked);
        this.ended();
      });
    this.#running.add(tracked);
  }

  get size(): number {
    return this.#running.size;
  }

  /** Resolves once the work under way now has ended (work it starts meanwhile is not waited for). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#running]);
  }
}
