/** `pushgate serve`: the HTTP server in the foreground. It logs to stdout (server/log.ts); SIGTERM/SIGINT drain, SIGHUP reloads policies. */
import type { Argv } from 'yargs';
import { envOverrides, type ConfigOverride } from '../../server/config.ts';
import type { CliContext, GlobalArgs } from '../context.ts';

export function serveCommand(y: Argv<GlobalArgs>, ctx: CliContext): Argv<GlobalArgs> {
  return y.command(
    'serve',
    'Run the server (logs on stdout: JSON lines, pretty on a terminal); creates the database and the key when missing',
    (b) =>
      b
        .option('host', { type: 'string', describe: 'Listen address (server.host; env PUSHGATE_HOST)' })
        .option('port', { type: 'string', describe: 'Listen port (server.port; env PUSHGATE_PORT)' }),
    (argv) =>
      ctx.run(async () => {
        const flags: ConfigOverride[] = [];
        if (argv.host !== undefined) flags.push({ path: 'server.host', value: argv.host, source: '--host' });
        if (argv.port !== undefined) flags.push({ path: 'server.port', value: argv.port, source: '--port' });
        const overrides = [...envOverrides(ctx.io.env ?? process.env), ...flags];
        const file = ctx.configFile(argv);
        const config = ctx.config(argv, flags);
        const { handleSignals, startServer } = await import('../../server/main.ts');
        const running = await startServer(file, { config, overrides });
        handleSignals(running);
        await new Promise<void>((resolve) => running.server.once('close', () => resolve()));
      }),
  );
}
