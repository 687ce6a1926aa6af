/**
 * Running server: load config → build deps → create app → listen. SIGTERM/SIGINT drain (stop accepting, let
 * running requests finish within `wait.drain_seconds`, then close); SIGHUP re-reads the policies from the config
 * file and policy files, keeping the old set when anything is wrong.
 */
import type { Server } from 'node:http';
import type Koa from 'koa';
import { loadConfig, publicUrlWarning, type Config, type ConfigOverride } from './config.ts';
import { buildDeps, type BuildOptions, type Deps } from './deps.ts';
import { createApp, createMetricsApp } from './app.ts';
import { Events } from '../core/events.ts';
import { RequestScope } from '../core/request_scope.ts';
import { systemClock } from '../core/clock.ts';
import { attachLog, createLogger, lineDestination } from './log.ts';
import { ConfigError } from '../core/errors.ts';
import { startCleanup } from './store/cleanup.ts';
import { startWebhookDispatcher } from './auth/webhooks.ts';
import { expireOverduePushes } from './auth/app_push.ts';

export interface RunningServer {
  readonly deps: Deps;
  readonly server: Server;
  readonly url: string;
  /** The separate metrics listener (metrics.listen), else null: /metrics is then on the main port. */
  readonly metricsServer: Server | null;
  /** Its base URL, e.g. http://127.0.0.1:9464, else null. */
  readonly metricsUrl: string | null;
  reload(): void;
  stop(reason?: string): Promise<void>;
}

/**
 * Listens with the server settings pushgate needs: a deep accept backlog, no per-request timeout (a push wait may
 * last as long as its policy says), a bounded time for the headers, keep-alive a little longer than typical LBs.
 */
export async function listen(app: { listen: Koa['listen'] }, config: Config): Promise<Server> {
  const server = app.listen({ port: config.server.port, host: config.server.host, backlog: 4096 });
  server.requestTimeout = 0;
  server.headersTimeout = 30_000;
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  return server;
}

export interface StartOptions {
  config?: Config;
  /** Environment and command-line settings over the file (also applied when SIGHUP re-reads it). */
  overrides?: readonly ConfigOverride[];
  /** Where the JSON log lines go (one call per line, without the newline); default stdout, pretty on a terminal. */
  log?: (line: string) => void;
  /** Push test seam (BuildOptions.push): e.g. no RSA-4096 server keys made ahead for a test that enrolls no phone. */
  push?: BuildOptions['push'];
}

/** The app's TLS check for enrollments without a user context: '0' only when every push type's policy says so. */
function defaultSslVerify(deps: Deps): '0' | '1' {
  try {
    const p = deps.policies.resolve('enrollment', {});
    return ['edupush_ssl_verify', 'push_ssl_verify'].every((a) => String(p.get(a)) === '0') ? '0' : '1';
  } catch {
    return '1';
  } // conflicting values: the enrollment reports it
}

export async function startServer(configFile: string | null, opts: StartOptions = {}): Promise<RunningServer> {
  const config = opts.config ?? loadConfig(configFile, opts.overrides);
  const events = new Events();
  const scope = new RequestScope();
  const logger = createLogger({
    level: config.log.level,
    format: config.log.format,
    clock: systemClock,
    node: config.server.nodeName,
    destination: opts.log ? lineDestination(opts.log) : undefined,
  });
  const detachLog = attachLog(events, logger, scope);
  const deps = await buildDeps(config, { events, scope, push: opts.push });
  const app = createApp(deps);
  let server: Server | undefined;
  let metricsServer: Server | null = null;
  try {
    server = await listen(app, config);
    const m = config.metrics.listen;
    if (m) {
      metricsServer = createMetricsApp(deps).listen({ port: m.port, host: m.host });
      await new Promise<void>((resolve, reject) => {
        metricsServer!.once('listening', resolve);
        metricsServer!.once('error', reject);
      });
    }
  } catch (err) {
    // e.g. metrics.listen's port is taken: nothing stays open behind the error.
    server?.close();
    server?.closeAllConnections();
    await deps.close();
    throw err;
  }
  const baseUrl = (host: string, s: Server, fallback: number) => {
    const addr = s.address();
    const port = typeof addr === 'object' && addr ? addr.port : fallback;
    return { port, url: `http://${host.includes(':') ? `[${host}]` : host}:${port}` };
  };
  const { port, url } = baseUrl(config.server.host, server, config.server.port);
  const metricsUrl = metricsServer && config.metrics.listen ? baseUrl(config.metrics.listen.host, metricsServer, 0).url : null;
  const stopCleanup = startCleanup(deps);
  // Webhooks of applications, and the expiry of their pushes nobody reads (server/auth/webhooks.ts, app_push.ts).
  const dispatcher = startWebhookDispatcher(deps, { owner: config.server.nodeName, onTick: () => expireOverduePushes(deps) });
  events.emit('server.started', { host: config.server.host, port, database: deps.store.name });
  const urlWarning = publicUrlWarning(config, defaultSslVerify(deps));
  if (urlWarning) events.emit('config.warning', { message: urlWarning });

  let stopping: Promise<void> | null = null;
  return {
    deps,
    server,
    url,
    metricsServer,
    metricsUrl,
    reload() {
      try {
        const next = configFile ? loadConfig(configFile, opts.overrides) : config;
        deps.reloadPolicies(next);
      } catch (err) {
        events.emit('policies.reload_failed', { error: err instanceof ConfigError ? err.problems.join('; ') : String(err) });
      }
    },
    stop(reason = 'stop') {
      stopping ??= (async () => {
        events.emit('server.stopping', { reason });
        stopCleanup();
        await dispatcher.stop();
        deps.waits.drain(); // new waits get 503 at once
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const after = (ms: number) => new Promise<void>((resolve) => systemClock.schedule(ms, resolve));
        // Running requests (and waits) may finish within the drain deadline; the rest get a clear 503.
        await Promise.race([Promise.all([closed, deps.waits.idle()]), after(config.wait.drainSeconds * 1000)]);
        deps.waits.abortAll();
        await Promise.race([closed, after(1000)]);
        server.closeAllConnections();
        if (metricsServer) {
          const ms = metricsServer;
          await new Promise<void>((resolve) => {
            ms.close(() => resolve());
            ms.closeAllConnections();
          });
        }
        try {
          await deps.close();
        } finally {
          detachLog.flush(); // the refusals still being counted (server/log.ts attachLog)
          events.emit('server.stopped', { reason }); // the last line
          detachLog();
        }
      })();
      return stopping;
    },
  };
}

/** Wires process signals to a running server. */
export function handleSignals(running: RunningServer): void {
  const stop = (sig: string) => {
    void running.stop(sig).then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => running.reload());
}
