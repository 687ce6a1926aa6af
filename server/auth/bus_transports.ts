/** Cross-node transports for the AnswerBus: PostgreSQL LISTEN/NOTIFY and Redis pub/sub. */
import pg from 'pg';
import { Redis } from 'ioredis';
import type { BusTransport } from './answers.ts';

const CHANNEL = 'pushgate_answers';

/**
 * One dedicated LISTEN connection (re-established after errors with a short back-off); NOTIFY goes over a
 * second small pool. Payload: the transaction id.
 */
export function pgTransport(url: string, onError: (err: unknown) => void, schedule: (ms: number, fn: () => void) => void): BusTransport {
  let listener: pg.Client | null = null;
  let closed = false;
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', onError);
  let deliver: (tid: string) => void = () => {};
  const connect = async (): Promise<void> => {
    if (closed) return;
    const client = new pg.Client({ connectionString: url });
    client.on('notification', (msg) => { if (msg.channel === CHANNEL && msg.payload) deliver(msg.payload); });
    client.on('error', (err) => {
      onError(err);
      if (listener === client) listener = null;
      client.end().catch(() => {});
      if (!closed) schedule(1000, () => { connect().catch(onError); });
    });
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    listener = client;
  };
  return {
    name: 'postgres',
    async start(onMessage) { deliver = onMessage; await connect(); },
    publish(tid) { pool.query('select pg_notify($1, $2)', [CHANNEL, tid]).catch(onError); },
    async close() {
      closed = true;
      await listener?.end().catch(() => {});
      await pool.end().catch(() => {});
    },
  };
}

export function redisTransport(url: string, onError: (err: unknown) => void): BusTransport {
  const sub = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });
  const pubc = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });
  sub.on('error', onError);
  pubc.on('error', onError);
  return {
    name: 'redis',
    async start(onMessage) {
      await sub.connect();
      await pubc.connect();
      sub.on('message', (channel: string, message: string) => { if (channel === CHANNEL) onMessage(message); });
      await sub.subscribe(CHANNEL);
    },
    publish(tid) { pubc.publish(CHANNEL, tid).catch(onError); },
    async close() {
      sub.disconnect();
      pubc.disconnect();
    },
  };
}
