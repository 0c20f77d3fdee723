// A window model for pipeline tests: sums the values of the window's readings after a small
// random delay (so workers finish out of order); a reading of -1 makes it throw, -2 kills its worker.
export default async function sumWindow(window) {
  const values = window.value.map((reading) => reading.value);
  if (values.includes(-1)) throw new Error(`cannot score window ${window.key}@${window.start}`);
  if (values.includes(-2)) process.exit(3);
  await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 5)));
  return { key: window.key, start: window.start, sum: values.reduce((a, b) => a + b, 0) };
}
