export function init() {
  return new Promise(() => {});
}

export default function neverCalled() {
  return 0;
}
