/** `pushgate serve`: the HTTP server in the foreground. It logs JSON lines itself; SIGTERM/SIGINT drain, SIGHUP reloads policies. */
import type { Argv } from 'yargs';
import { configPathFrom } from '../../server/config.ts';
import { handleSignals, startServer } from '../../server/main.ts';
import type { CliContext, GlobalArgs } from '../context.ts';

export function serveCommand(y: Argv<GlobalArgs>, ctx: CliContext): Argv<GlobalArgs> {
  return y.command('serve', 'Run the server (logs JSON lines on stdout)', (b) => b, (argv) => ctx.run(async () => {
    const running = await startServer(configPathFrom(argv.config));
    handleSignals(running);
    await new Promise<void>((resolve) => running.server.once('close', () => resolve()));
  }));
}
