import type { Clock, TimerHandle } from '../clock.js';
import { describeError } from '../errors.js';
import type { BackgroundWork } from './background.js';
import type { Task } from './task.js';

/** What the scheduler needs of the running app. */
export interface SchedulerDeps {
  readonly clock: () => Clock;
  readonly commitIntervalMs: number;
  readonly background: BackgroundWork;
  /** Records are taken and work is committed: from subscribing until the app stops or fails. */
  isOpen(): boolean;
  tasks(): Iterable<Task>;
  /** The tasks in the order a commit round takes them: tasks that hand records off before the others. */
  tasksToCommit(): Iterable<Task>;
  commit(task: Task): Promise<void>;
  /** Processes a task's input that waited for its turn (see task/input-order.ts); called under the task's lock. */
  releaseInput(task: Task, now: number): Promise<unknown>;
  /** Checks for stuck tasks (and logs them), once per commit interval. */
  checkStalls(now: number): void;
  log(level: 'warn', message: string, fields: Record<string, unknown>): void;
}

/**
 * The app's one clock timer: it fires at the earliest of the next commit and any task's next
 * wake-up (a window due by the clock, an idle task's stream time). Each firing runs one round of
 * timer work in the background — punctuation of every task, then, when due, a commit of every
 * task — and no second round starts while one is under way.
 */
export class Scheduler {
  #timer: TimerHandle | undefined;
  #nextCommitAt = 0;
  /** A round of timer work (punctuation, commits) is under way. */
  #round = false;

  constructor(private readonly deps: SchedulerDeps) {}

  /** Starts the commit interval from now. */
  start(): void {
    this.#nextCommitAt = this.deps.clock().now() + this.deps.commitIntervalMs;
  }

  stop(): void {
    this.#timer?.cancel();
  }

  /** Arms the timer for the earliest of: the next commit, any task's next wake-up. */
  arm(): void {
    if (!this.deps.isOpen()) return;
    const clock = this.deps.clock();
    let due = this.#nextCommitAt;
    // While a round of timer work waits (a commit on a broker that does not answer), only the next
    // commit time matters: it checks for stuck tasks.
    for (const task of this.#round ? [] : this.deps.tasks()) {
      const wakeUp = task.nextWakeUp();
      if (wakeUp !== undefined && wakeUp < due) due = wakeUp;
    }
    this.#timer?.cancel();
    this.#timer = clock.setTimeout(() => this.#fire(), Math.max(0, due - clock.now()));
  }

  #fire(): void {
    if (!this.deps.isOpen()) return;
    const now = this.deps.clock().now();
    const commitDue = now >= this.#nextCommitAt;
    if (commitDue) {
      this.#nextCommitAt = now + this.deps.commitIntervalMs;
      this.deps.checkStalls(now);
    }
    if (this.#round) {
      this.arm();
      return;
    }
    this.#round = true;
    this.deps.background.run(async () => {
      try {
        for (const task of this.deps.tasks()) {
          await task.exclusive(async () => {
            // Input that waited for its turn first: it is older than what the clock closes.
            await this.deps.releaseInput(task, now);
            await task.preparePunctuate(now);
            task.punctuate(now);
          });
        }
        if (!commitDue) return;
        // A task that took records handed off by another is committed first when that one commits
        // (see HandOffs.beforeCommit): handing tasks go first, and a task committed that way is not
        // committed again in the same round. Every commit flushes the state that changed to the
        // changelog: taking the reading tasks first made them commit about 1.5 times per round, and
        // a hopping job wrote a third more changelog records.
        const round = [...this.deps.tasksToCommit()].map((task) => ({ task, commits: task.commits }));
        for (const { task, commits } of round) {
          if (task.commits > commits) continue;
          // One task's failed commit (retried with the next one, or rebuilt) does not hold the others back.
          await this.deps.commit(task).catch((error: unknown) => this.deps.log('warn', 'commit failed', { task: task.taskId, error: describeError(error) }));
        }
      } finally {
        this.#round = false;
      }
    }, 'timer work failed');
    this.arm();
  }
}
