import type { TaskContext } from '../context.js';

/**
 * A key's current value in a table of the same task (the table side of a join), resolved at its
 * first use: operators register as the task's graph is built, the table's possibly after the join's.
 */
export function tableLookup(context: TaskContext, storeName: string): (key: unknown) => unknown {
  let lookup: ((key: unknown) => unknown) | undefined;
  return (key) => {
    if (!lookup) {
      const table = context.operatorOf(storeName);
      if (!table?.lookup) throw new Error(`join: the table ${storeName} is not in task ${context.taskId}`);
      lookup = (wanted) => table.lookup!(wanted);
    }
    return lookup(key);
  };
}
