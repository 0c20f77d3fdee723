/** A workerPool model whose init() throws. */
export function init() { throw new Error('init exploded'); }
export default function m(w) { return w; }
