// Returns a function (which cannot cross threads) for windows flagged `unclonable`.
export default function maybeUnclonable(window) {
  if (window.value.unclonable) return { callback: () => window.value.n };
  return window.value.n;
}
