import { describe, expect, it } from 'vitest';
import * as ml from './index.js';

describe('@eddy/ml public surface', () => {
  it('exports the pool, its contract and the models namespace', () => {
    expect(Object.keys(ml).sort()).toEqual(['BATCH_HANDLER', 'WorkerPool', 'WorkerPoolError', 'models', 'workerPool']);
    expect(ml.BATCH_HANDLER).toBe(Symbol.for('eddy.batchHandler'));
    expect(Object.keys(ml.models).sort()).toEqual(['ewma', 'holt', 'linearTrend', 'mad', 'madConsistencyConstant', 'scorePoint', 'zScore']);
  });
});
