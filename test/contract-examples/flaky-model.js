// Throws for windows of key 'bad' (to be dead-lettered after retries), else counts the window's values.
export default function flaky(window) {
  if (window.key === 'bad') throw new Error(`cannot score ${window.key}`);
  return { key: window.key, n: window.value.length };
}
