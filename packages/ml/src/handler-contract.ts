/** The batch-handler contract lives in @eddy/core; the pool implements it. */
export { BATCH_HANDLER } from '@eddy/core';
export type { HandlerOutcome, WindowBatchHandler } from '@eddy/core';
