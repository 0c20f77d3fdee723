// A window model for the contract examples (DESIGN: workerPool(new URL('./model.js', import.meta.url))).
// Takes { key, start, end, value: Reading[] } and returns a prediction.
export default function model(window) {
  const values = window.value.map((r) => r.value);
  return { sensor: window.key, start: window.start, end: window.end, n: values.length, sum: values.reduce((a, b) => a + b, 0) };
}

export function named(window) {
  return { named: true, key: window.key, n: window.value.length };
}
