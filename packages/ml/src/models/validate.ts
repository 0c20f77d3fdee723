// Input checks shared by the models. They run in a user's worker, where a clear message naming
// the model, the argument and the bad value is all there is to debug with.

/**
 * A value observed at a time: `t` in any unit (typically epoch milliseconds), `v` the value.
 *
 * @example
 * const points: TimedValue[] = window.value.map((reading) => ({ t: reading.ts, v: reading.celsius }));
 */
export interface TimedValue {
  readonly t: number;
  readonly v: number;
}

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

export function requireSeries(model: string, values: unknown, minimumLength = 1): asserts values is readonly number[] {
  if (!Array.isArray(values)) {
    throw new TypeError(`${model}: values must be an array of numbers, got ${show(values)}`);
  }
  if (values.length < minimumLength) {
    throw new RangeError(`${model}: needs at least ${minimumLength} value${minimumLength === 1 ? '' : 's'}, got ${values.length}`);
  }
  values.forEach((value: unknown, index) => {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new TypeError(`${model}: values[${index}] must be a finite number, got ${show(value)}`);
    }
  });
}

export function requireFiniteNumber(model: string, name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new TypeError(`${model}: ${name} must be a finite number, got ${show(value)}`);
  }
}

/** A smoothing factor: 0 would ignore every new value, above 1 would overshoot. */
export function requireSmoothingFactor(model: string, name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !(value > 0 && value <= 1)) {
    throw new RangeError(`${model}: ${name} must be a number in (0, 1], got ${show(value)}`);
  }
}

export function requirePositive(model: string, name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${model}: ${name} must be a finite number > 0, got ${show(value)}`);
  }
}

export function requireWholeNumber(model: string, name: string, value: unknown, minimum: number): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum) {
    throw new RangeError(`${model}: ${name} must be a whole number >= ${minimum}, got ${show(value)}`);
  }
}
