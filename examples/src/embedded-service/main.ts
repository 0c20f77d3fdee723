/** Runs the embedded service: `node examples/dist/embedded-service/main.js [port] [stateDir]`. */
import { startService } from './service.js';

const port = Number(process.argv[2] ?? 8080);
const stateDir = process.argv[3] ?? '.eddy';
const service = await startService({ port, stateDir });
process.stdout.write(`page stats service on ${service.url} (POST /events, GET /stats/:page, GET /windows/:page, GET /ready, GET /metrics)\n`);
const shutdown = () => void service.stop().then(() => process.exit(0));
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
