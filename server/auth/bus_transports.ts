/** Cross-node transports for the AnswerBus: PostgreSQL LISTEN/NOTIFY and Redis pub/sub. */
import { createRequire } from 'node:module';
import type PgModule from 'pg';
import type * as IoRedisModule from 'ioredis';
import type { BusTransport } from './answers.ts';

// The drivers are loaded only by a server that uses that transport (together they weigh ~27 MB of RSS).
const requireDriver = createRequire(import.meta.url);

const CHANNEL = 'pushgate_answers';

/** Back-off of the LISTEN connection's re-connect attempts: 1 s, 2 s, 4 s, then every 5 s until the database is back. */
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 5000;
const CONNECT_TIMEOUT_MS = 5000;

/**
 * One dedicated LISTEN connection; NOTIFY goes over a second small pool. Payload: the transaction id.
 * When the LISTEN connection breaks (database restarted, network), it is re-established with a capped back-off,
 * retrying for as long as it takes — one failed attempt (the database still down) must not end the retries.
 * Notifications sent while it was down are lost; the waiters' safety-net re-read covers them.
 */
export function pgTransport(url: string, onError: (err: unknown) => void, schedule: (ms: number, fn: () => void) => void): BusTransport {
  const pg = requireDriver('pg') as typeof PgModule;
  let listener: PgModule.Client | null = null;
  let closed = false;
  let connecting = false;
  let retryPending = false;
  let failures = 0;
  // The NOTIFY connections stay open (no idle timeout): a wake-up after a quiet spell must not wait for a new
  // connection (TCP, authentication, TLS) — that was a cross-node delivery outlier of 10+ ms.
  const pool = new pg.Pool({ connectionString: url, max: 2, idleTimeoutMillis: 0, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  pool.on('error', onError);
  let deliver: (tid: string) => void = () => {};

  const reconnectLater = () => {
    if (closed || connecting || retryPending || listener) return;
    retryPending = true;
    const delay = Math.min(RECONNECT_MIN_MS * 2 ** failures, RECONNECT_MAX_MS);
    failures++;
    schedule(delay, () => {
      retryPending = false;
      connect().catch((err) => {
        onError(err);
        reconnectLater();
      });
    });
  };

  const connect = async (): Promise<void> => {
    if (closed || connecting || listener) return;
    connecting = true;
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, keepAlive: true });
    let lost = false;
    const onLost = (err: unknown) => {
      if (lost) return;
      lost = true;
      onError(err);
      if (listener === client) listener = null;
      client.end().catch(() => {});
      reconnectLater(); // no-op while this client is still connecting: the caller of connect() schedules then
    };
    client.on('notification', (msg) => {
      if (msg.channel === CHANNEL && msg.payload) deliver(msg.payload);
    });
    client.on('error', onLost);
    client.on('end', () => {
      if (!closed) onLost(new Error('LISTEN connection ended'));
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (err) {
      lost = true;
      client.end().catch(() => {});
      throw err;
    } finally {
      connecting = false;
    }
    if (closed) {
      await client.end().catch(() => {});
      return;
    }
    if (lost) throw new Error('LISTEN connection lost while starting');
    listener = client;
    failures = 0;
  };

  return {
    name: 'postgres',
    async start(onMessage) {
      deliver = onMessage;
      await connect();
    },
    publish(tid) {
      pool.query('select pg_notify($1, $2)', [CHANNEL, tid]).catch(onError);
    },
    async check() {
      // Wake-ups arrive on the LISTEN connection: it must be up (not re-connecting) and answer a round trip.
      const l = listener;
      if (!l) throw new Error('the LISTEN connection is down (re-connecting)');
      await l.query('select 1');
    },
    async close() {
      closed = true;
      const l = listener;
      listener = null;
      await l?.end().catch(() => {});
      await pool.end().catch(() => {});
    },
  };
}

export function redisTransport(url: string, onError: (err: unknown) => void): BusTransport {
  const { Redis } = requireDriver('ioredis') as typeof IoRedisModule;
  const sub = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });
  const pubc = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });
  sub.on('error', onError);
  pubc.on('error', onError);
  return {
    name: 'redis',
    async start(onMessage) {
      await sub.connect();
      await pubc.connect();
      sub.on('message', (channel: string, message: string) => {
        if (channel === CHANNEL) onMessage(message);
      });
      await sub.subscribe(CHANNEL);
    },
    publish(tid) {
      pubc.publish(CHANNEL, tid).catch(onError);
    },
    async check() {
      // Fail at once while a connection is down (ioredis would queue a command until it is back).
      if (sub.status !== 'ready') throw new Error(`the subscriber connection is ${sub.status}`);
      if (pubc.status !== 'ready') throw new Error(`the publisher connection is ${pubc.status}`);
      await pubc.ping();
    },
    async close() {
      sub.disconnect();
      pubc.disconnect();
    },
  };
}
