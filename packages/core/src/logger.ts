/** A pino-compatible logger: `logger.warn({ fields }, 'message')`. */
export interface Logger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

const write = (level: string) => (fields: Record<string, unknown>, message: string) => {
  process.stderr.write(`${JSON.stringify({ level, msg: message, ...fields })}\n`);
};

/** The default logger: warnings and errors as JSON lines on stderr; info and debug are dropped. */
export const defaultLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: write('warn'),
  error: write('error'),
};

/** A logger that drops everything (tests). */
export const silentLogger: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
