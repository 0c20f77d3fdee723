/** A model module whose import throws (a missing weights file, say). */
throw new Error('weights.bin not found while importing the model');
export default function never() { return 0; }
