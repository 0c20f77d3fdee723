/** Sums a large numeric payload carried by the window's readings (`payload`: number[] or Float64Array). */
export default function big(window) {
  let sum = 0;
  let n = 0;
  for (const r of window.value) {
    for (const x of r.payload) { sum += x; n += 1; }
  }
  return { key: window.key, start: window.start, n, sum };
}
