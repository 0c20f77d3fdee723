/**
 * Helpers for the host-error tests: a logger that keeps its lines, a small reading, and the
 * headers the dead letter of an input record carries.
 */
import type { Logger } from '@eddy/core';
export type Line = { level: string; message: string; fields: Record<string, unknown> };
export function recording(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, message: string) => void lines.push({ level, message, fields });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } as Logger & { lines: Line[] };
}
export interface Reading { sensor: string; value: number; ts: number }
export const r = (sensor: string, value: number, ts: number): Reading => ({ sensor, value, ts });
export const HEADERS = ['error', 'error.code', 'step', 'task', 'topic', 'partition', 'offset'];
