/** Bare Koa baseline child: one JSON route, same listen settings as pushgate. Prints `READY <url>`. */
import Koa from 'koa';
import type { AddressInfo } from 'node:net';

const app = new Koa();
app.use((ctx) => {
  ctx.set('Cache-Control', 'no-cache');
  ctx.body = { jsonrpc: '2.0', id: 1, result: { status: true, value: true, authentication: 'ACCEPT' }, detail: { message: 'hello' } };
});
const server = app.listen({ port: 0, host: '127.0.0.1', backlog: 4096 });
server.keepAliveTimeout = 65_000;
server.once('listening', () => {
  process.stdout.write(`READY http://127.0.0.1:${(server.address() as AddressInfo).port} {}\n`);
});
process.on('message', (msg: unknown) => {
  if ((msg as { type?: string } | null)?.type !== 'stats') return;
  const cpu = process.cpuUsage();
  process.send?.({
    type: 'stats',
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
    pinActive: 0,
    pinWaiting: 0,
    rssBytes: process.memoryUsage().rss,
  });
});
process.once('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
});
