// Throws for windows flagged `fail`; otherwise returns `value.n`.
export default function maybeThrow(window) {
  if (window.value.fail) throw new RangeError(`bad window ${window.key}`);
  return window.value.n;
}
