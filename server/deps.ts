/**
 * Deps: everything the HTTP app, the CLI and the tests share, built once by buildDeps(config).
 * No module-level singletons anywhere else.
 */
import fs from 'node:fs';
import type { Config } from './config.ts';
import type { Clock } from '../core/clock.ts';
import { systemClock } from '../core/clock.ts';
import { Events } from '../core/events.ts';
import { RequestScope } from '../core/request_scope.ts';
import { createStore, type Store } from './store/store.ts';
import { describeDatabase } from './store/knex.ts';
import { createSecretBox, loadOrCreateKey, type SecretBox } from './store/secrets.ts';
import { createPinHasher, type PinHasher } from './auth/pin.ts';
import { createRealms, type Realms } from './auth/users.ts';
import { createTokenRegistry, ALL_TOKEN_TYPES, type TokenRegistry } from '../tokens/index.ts';
import { createPolicyEngine } from '../policies/engine.ts';
import { buildActionRegistry, CORE_ACTIONS } from '../policies/actions.ts';
import { loadPolicyFiles, parsePolicies } from '../policies/load.ts';
import type { ActionDef, PolicyDef, PolicyEngine } from '../policies/types.ts';
import { ConfigError } from '../core/errors.ts';
import { createAnswerBus, type AnswerBus, type BusTransport } from './auth/answers.ts';
import { pgTransport, redisTransport } from './auth/bus_transports.ts';
import { createWaitRegistry, waitPolicyWarnings, type WaitRegistry } from './auth/wait.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { createPushServices, type PushServices, type PushServicesOptions } from './auth/push_services.ts';
import { createThrottle, type Throttle } from './auth/throttle.ts';
import { createReadiness, type Readiness } from './readiness.ts';
import { watchAppPushAnswers } from './auth/app_push.ts';
import { subscribeTokenWebhooks } from './auth/webhooks.ts';

export interface Deps {
  readonly config: Config;
  readonly clock: Clock;
  readonly events: Events;
  /** The request the running code serves (its id on every log line; core/request_scope.ts). */
  readonly scope: RequestScope;
  readonly store: Store;
  readonly box: SecretBox;
  readonly pins: PinHasher;
  readonly realms: Realms;
  readonly registry: TokenRegistry;
  readonly policies: PolicyEngine;
  readonly jwtKey: Buffer;
  readonly answers: AnswerBus;
  readonly waits: WaitRegistry;
  readonly metrics: Metrics;
  /** GET /readyz's checks (`database`, `answer_bus`; more may be added), each bounded by a timeout. */
  readonly readiness: Readiness;
  /** Push channels (push.channels), the server-key pool and the support handed to push token types. */
  readonly push: PushServices;
  /** Back-off: failed attempts per user / end-user address, challenge triggers per user (server/auth/throttle.ts). */
  readonly throttle: Throttle;
  /** Re-reads inline policies and policy files; throws ConfigError and keeps the old set on any problem. */
  reloadPolicies(from?: Config): number;
  close(): Promise<void>;
}

export interface BuildOptions {
  clock?: Clock;
  events?: Events;
  /** The request scope the log writer reads (default: a new one). */
  scope?: RequestScope;
  /** Use this key instead of reading/creating `secrets.key_file` (tests). */
  key?: Buffer;
  /** Run migrations (default true). */
  migrate?: boolean;
  /** Cross-node transport for the answer bus; default: Redis when bus.redis_url is set, else PostgreSQL LISTEN/NOTIFY on PostgreSQL, else none. */
  transport?: BusTransport | null;
  /** Push test seams: server-key pool (e.g. 2048-bit keys) and Firebase credential/agent. */
  push?: PushServicesOptions;
}

export function collectPolicies(config: Config, actions: ReadonlyMap<string, ActionDef>): PolicyDef[] {
  const inline = parsePolicies(config.policies, actions, 'policies');
  const files = loadPolicyFiles([...config.policyFiles], actions);
  const problems = [...inline.problems, ...files.problems];
  const all = [...inline.policies, ...files.policies];
  const seen = new Set<string>();
  for (const p of all) {
    if (seen.has(p.name)) problems.push(`policy name ${p.name} is defined more than once`);
    seen.add(p.name);
  }
  if (problems.length) throw new ConfigError(problems);
  return all;
}

/** Every policy action the server knows: the core ones and those the token types declare. */
export function allActions(registry: TokenRegistry = createTokenRegistry(ALL_TOKEN_TYPES)): Map<string, ActionDef> {
  return buildActionRegistry(CORE_ACTIONS, registry.actions());
}

export async function buildDeps(config: Config, opts: BuildOptions = {}): Promise<Deps> {
  const clock = opts.clock ?? systemClock;
  const events = opts.events ?? new Events();
  const scope = opts.scope ?? new RequestScope();
  // Validate everything that can be wrong in the configuration before creating anything on disk.
  const registry = createTokenRegistry(ALL_TOKEN_TYPES);
  const actions = allActions(registry);
  const initial = collectPolicies(config, actions);
  const policies = createPolicyEngine({ policies: initial, actions, clock });
  for (const message of waitPolicyWarnings(config, initial, registry)) events.emit('config.warning', { message });
  let key = opts.key;
  let keyCreated = false;
  if (!key) {
    const loaded = loadOrCreateKey(config.secrets.keyFile);
    key = loaded.key;
    keyCreated = loaded.created;
  }
  const box = createSecretBox(key);
  const pins = createPinHasher(config.pin, { clock, events });
  const realms = createRealms(config.realms, pins, { clock, events });
  const store = createStore(config.database.url, box, {
    poolMax: config.database.poolMax,
    node: config.server.nodeName,
    log: (level, msg) => events.emit('log', { level, msg: `database ${describeDatabase(config.database.url)}: ${msg}` }),
  });
  if (opts.migrate !== false) {
    try {
      await store.migrate();
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  if (keyCreated) {
    // A new key next to a database whose tokens were encrypted with another one would make every token unreadable
    // (and hide the lost key behind decryption errors): refuse, and take the new key back.
    const encrypted = await store.tokens.countWithSecrets().catch(() => 0);
    if (encrypted > 0) {
      await store.close();
      fs.rmSync(config.secrets.keyFile, { force: true });
      throw new ConfigError([
        `secrets.key_file ${config.secrets.keyFile} is missing, but the database holds ${encrypted} token(s) encrypted with another key: `
          + 'put that key file back in place (see "Backups" in the README); no new key was created',
      ]);
    }
    events.emit('config.warning', {
      message: `SECRETS KEY CREATED at ${config.secrets.keyFile}: back this file up — without it no stored token secret can be read`,
    });
  }
  const busError = (err: unknown) => events.emit('log', { level: 'warn', msg: 'answer bus transport error', error: String(err) });
  const transport =
    opts.transport !== undefined
      ? opts.transport
      : config.bus.redisUrl
        ? redisTransport(config.bus.redisUrl, busError)
        : store.dialect === 'postgres'
          ? pgTransport(config.database.url, busError, (ms, fn) => {
              clock.schedule(ms, fn);
            })
          : null;
  const answers = createAnswerBus(clock, transport, busError);
  try {
    await answers.start();
  } catch (err) {
    await answers.close().catch(() => {});
    await store.close();
    throw err;
  }
  const unsubscribe = events.on('challenge.answered', (e) => answers.notify(e.transactionId));
  const waits = createWaitRegistry({ config, events });
  let push: PushServices;
  try {
    push = createPushServices({ config, clock, events, store, answers }, opts.push);
  } catch (err) {
    unsubscribe();
    await answers.close().catch(() => {});
    await store.close();
    throw err;
  }
  const throttle = createThrottle({ config, events, store });
  const readiness = createReadiness({ clock, events }, [
    { name: 'database', run: () => store.ping() },
    { name: 'answer_bus', run: () => answers.check() },
  ]);
  // A realm whose user store can fail (LDAP): the node is not ready while no server of the store answers.
  for (const name of realms.names()) {
    const check = realms.get(name)!.check;
    if (check) readiness.add({ name: `realm_${name}`, run: check });
  }
  const metrics = createMetrics(
    events,
    {
      waitsActive: () => waits.active,
      answerBusWaiters: () => answers.waiting,
      pinQueue: () => pins.limiter,
      dbPool: () => store.poolStats(),
    },
    { channels: config.push.channels.map((c) => c.name), readinessChecks: readiness.names },
  );
  const deps: Deps = {
    config,
    clock,
    events,
    scope,
    store,
    box,
    pins,
    realms,
    registry,
    policies,
    answers,
    waits,
    push,
    throttle,
    metrics,
    readiness,
    jwtKey: box.derive('jwt'),
    reloadPolicies(from = config) {
      const next = collectPolicies(from, actions);
      policies.replace(next);
      for (const message of waitPolicyWarnings(config, next, registry)) events.emit('config.warning', { message }); // the running challenge settings
      events.emit('policies.reloaded', { count: next.length });
      return next.length;
    },
    async close() {
      unsubscribe();
      unwatch();
      metrics.close();
      waits.abortAll();
      await answers.close();
      await push.close();
      await throttle.close();
      await realms.close();
      await store.close();
    },
  };
  // Applications (issue 15): a phone's answer settles the application push of its transaction; token events go to
  // the applications' webhooks (written to the outbox, delivered by the server's dispatcher).
  const offAnswers = watchAppPushAnswers(deps);
  const offTokens = subscribeTokenWebhooks(deps);
  const unwatch = () => {
    offAnswers();
    offTokens();
  };
  return deps;
}
