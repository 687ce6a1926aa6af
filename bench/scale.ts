/**
 * `npm run bench:scale`: does /validate/check get slower when the database holds 1,000,000 tokens instead of 1,000,
 * and how much disk does a token and a challenge take?
 *
 * For each database (SQLite, and PostgreSQL when reachable) and each size:
 *   1. a fresh database, migrated by pushgate itself;
 *   2. bulk fill with knex inside ONE transaction, in batches (as many rows per INSERT as the driver's bind-parameter
 *      limit allows): half spass, half HOTP tokens (users u0…uN-1, realm `default`), every row as enrollment writes it —
 *      one shared argon2id PIN hash (m=1024 KiB, t=1), HOTP secrets AES-256-GCM-encrypted with the server's key file;
 *      then SCALE_CHALLENGES challenge rows (pending, 20-digit transaction ids, 32-character nonces);
 *   3. size on disk: SQLite — bytes of the table and its indexes from the `dbstat` table (pages × page size) divided by
 *      the rows, plus the file size; PostgreSQL — pg_total_relation_size (table + indexes + TOAST) divided by the rows,
 *      after ANALYZE;
 *   4. one pushgate server per size (startServer, child process `bench/scale.ts --serve CONFIG`, near-free PIN hash so
 *      that the database part of a check is visible, audit row per request) answers `POST /validate/check` for random
 *      users: SCALE_SEQ sequential requests, then SCALE_CONC_REQUESTS at concurrency SCALE_CONC (no two in-flight
 *      requests share a user; HOTP users send PIN + their next OTP), the sizes taking turns in SCALE_ROUNDS rounds so
 *      that other load on the machine hits them alike (and is measured: /proc/stat). p50/p99 per phase; every answer
 *      must be ACCEPT.
 * Writes bench/README.md only between `<!-- scale:begin -->` and `<!-- scale:end -->` (appended when absent).
 *
 * Env: SCALE_SIZES (default 1000,1000000), SCALE_DBS (default sqlite,postgres; sqlite alone when PostgreSQL is
 * unreachable), SCALE_SEQ (2000), SCALE_CONC_REQUESTS (4000), SCALE_CONC (16), SCALE_ROUNDS (4), SCALE_CHALLENGES
 * (100000), SCALE_PG_URL (admin URL of a PostgreSQL server where scratch databases are created and dropped; default
 * postgres://postgres@127.0.0.1:5432/test). The whole default run takes a few minutes (the 1M fills dominate).
 * Flags: --no-write (print only).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import knexFactory, { type Knex } from 'knex';
import { createPinHasher } from '../server/auth/pin.ts';
import { createSecretBox, type SecretBox } from '../server/store/secrets.ts';
import { createStore } from '../server/store/store.ts';
import { hotpValue } from '../tokens/otp.ts';
import { machineBusyMs, ownCpuMs, processCpuMs } from './cpu.ts';
import { BENCH_DIR, envInt } from './env.ts';

const README = path.join(BENCH_DIR, 'README.md');
const BEGIN = '<!-- scale:begin -->';
const END = '<!-- scale:end -->';
const PIN = 'scale-pin-1234';
const REALM = 'default';

// ---- helpers ----------------------------------------------------------------------------------------------------
const log = (msg: string) => process.stderr.write(`[scale] ${msg}\n`);
const f0 = (n: number) => Math.round(n).toLocaleString('en-US');
const f2 = (n: number) => (n >= 100 ? f0(n) : n.toFixed(2));
const user = (i: number) => `u${i}`;
const isHotp = (i: number) => i % 2 === 1;
const hotpKey = (i: number): Buffer => crypto.createHash('sha1').update(`pushgate-scale-hotp-${i}`).digest();

function percentile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

type Db = 'sqlite' | 'postgres';
interface Options {
  seq: number;
  concRequests: number;
  conc: number;
  challenges: number;
  rounds: number;
}
interface Phase {
  ms: number[];
  accept: number;
  seconds: number;
}
interface Result {
  db: Db;
  size: number;
  fillS: number;
  fillRowsPerS: number;
  batch: number;
  challenges: number;
  tokenBytes: number;
  challengeBytes: number;
  fileBytes: number | null;
  seq: { n: number; p50: number; p99: number; accept: number; rps: number };
  conc: { n: number; p50: number; p99: number; accept: number; rps: number };
  /** Average CPU (cores) used by other processes on the machine during this size's load phases. */
  foreignCores: number | null;
}

/** A scratch database: SQLite file in the temp dir, or a fresh PostgreSQL database (dropped at the end). */
async function scratch(db: Db, tmp: string, tag: string): Promise<{ url: string; drop(): Promise<void> }> {
  if (db === 'sqlite') {
    const file = path.join(tmp, `${tag}.db`);
    return {
      url: `sqlite:${file}`,
      drop: async () => {
        for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
      },
    };
  }
  const adminUrl = process.env.SCALE_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const name = `pushgate_scale_${tag}_${crypto.randomBytes(4).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: adminUrl, pool: { min: 0, max: 1 } });
  await admin.raw(`create database ${name}`);
  await admin.destroy();
  return {
    url: adminUrl.replace(/\/[^/]*$/, `/${name}`),
    drop: async () => {
      const a = knexFactory({ client: 'pg', connection: adminUrl, pool: { min: 0, max: 1 } });
      await a.raw(`drop database if exists ${name} with (force)`);
      await a.destroy();
    },
  };
}

/** Rows per INSERT: as many as the bind-parameter limit allows (SQLite 32,766, PostgreSQL 65,535), at most 5,000. */
const batchRows = (db: Db, columns: number) => Math.min(5000, Math.floor((db === 'sqlite' ? 32_766 : 65_535) / columns));

/**
 * One multi-row `INSERT … VALUES (…), (…)` through knex.raw (knex's own builder turns a multi-row SQLite insert into a
 * compound SELECT, which SQLite caps at 500 terms). Column names come from our own rows, never from input.
 */
async function insertRows(trx: Knex.Transaction, table: string, rows: ReadonlyArray<Record<string, unknown>>): Promise<void> {
  if (!rows.length) return;
  const cols = Object.keys(rows[0]!);
  const tuple = `(${cols.map(() => '?').join(', ')})`;
  const sql = `insert into "${table}" (${cols.map((c) => `"${c}"`).join(', ')}) values ${rows.map(() => tuple).join(', ')}`;
  await trx.raw(
    sql,
    rows.flatMap((r) => cols.map((c) => r[c] as Knex.Value)),
  );
}

function tokenRow(db: Db, i: number, pinHash: string, box: SecretBox, now: number): Record<string, unknown> {
  const hotp = isHotp(i);
  return {
    serial: `${hotp ? 'SCHO' : 'SCSP'}${String(i).padStart(8, '0')}`,
    type: hotp ? 'hotp' : 'spass',
    username: user(i),
    realm: REALM,
    active: db === 'sqlite' ? 1 : true,
    rollout_state: '',
    pin_hash: pinHash,
    otp_len: hotp ? 6 : 0,
    counter: 0,
    fail_count: 0,
    max_fail: 10,
    description: '',
    info: JSON.stringify(hotp ? { hashlib: 'sha1', tokenkind: 'software' } : {}),
    secrets_enc: hotp ? box.encrypt(JSON.stringify({ otpKey: hotpKey(i).toString('hex') })) : null,
    created_at: now,
    updated_at: now,
    last_auth_at: null,
    rollout_expires_at: null,
  };
}

async function fill(
  db: Db,
  knex: Knex,
  size: number,
  challenges: number,
  box: SecretBox,
  pinHash: string,
): Promise<{ seconds: number; batch: number }> {
  const now = Date.now();
  const batch = batchRows(db, Object.keys(tokenRow(db, 0, pinHash, box, now)).length);
  const t0 = performance.now();
  await knex.transaction(async (trx) => {
    for (let start = 0; start < size; start += batch) {
      const rows: Record<string, unknown>[] = [];
      for (let i = start; i < Math.min(size, start + batch); i++) rows.push(tokenRow(db, i, pinHash, box, now));
      await insertRows(trx, 'tokens', rows);
      if ((start / batch) % 50 === 49) log(`  ${db} ${f0(size)}: ${f0(start + rows.length)} tokens`);
    }
    // Challenges of HOTP tokens (ids 2, 4, …: the fill order is the id order), as createChallenges stores them.
    const cBatch = batchRows(db, 9);
    for (let start = 0; start < challenges; start += cBatch) {
      const rows: Record<string, unknown>[] = [];
      for (let j = start; j < Math.min(challenges, start + cBatch); j++) {
        const i = (2 * j + 1) % size;
        rows.push({
          transaction_id: String(10n ** 19n + BigInt(j)),
          serial: `SCHO${String(i).padStart(8, '0')}`,
          token_id: i + 1,
          nonce: crypto.randomBytes(16).toString('hex'),
          status: 'pending',
          session: '',
          data: '{}',
          created_at: now,
          expires_at: now + 120_000,
        });
      }
      await insertRows(trx, 'challenges', rows);
    }
  });
  return { seconds: (performance.now() - t0) / 1000, batch };
}

/** Bytes per token and per challenge (table + indexes) and the database file size. */
async function sizes(
  db: Db,
  knex: Knex,
  url: string,
  size: number,
  challenges: number,
): Promise<{ tokenBytes: number; challengeBytes: number; fileBytes: number | null }> {
  if (db === 'sqlite') {
    await knex.raw('pragma wal_checkpoint(TRUNCATE)');
    const rows = (await knex.raw('select name, sum(pgsize) as bytes from dbstat group by name')) as Array<{ name: string; bytes: number }>;
    const idx = (await knex.raw("select name, tbl_name from sqlite_master where type in ('table', 'index')")) as Array<{
      name: string;
      tbl_name: string;
    }>;
    const bytesOf = (table: string) =>
      rows.filter((r) => idx.some((x) => x.name === r.name && x.tbl_name === table)).reduce((a, r) => a + Number(r.bytes), 0);
    const file = url.slice('sqlite:'.length);
    return {
      tokenBytes: bytesOf('tokens') / size,
      challengeBytes: challenges ? bytesOf('challenges') / challenges : 0,
      fileBytes: fs.statSync(file).size,
    };
  }
  await knex.raw('analyze');
  const one = async (table: string) =>
    Number(((await knex.raw('select pg_total_relation_size(?) as b', [table])) as { rows: Array<{ b: string | number }> }).rows[0]!.b);
  const dbBytes = Number(
    ((await knex.raw('select pg_database_size(current_database()) as b')) as { rows: Array<{ b: string | number }> }).rows[0]!.b,
  );
  return {
    tokenBytes: (await one('tokens')) / size,
    challengeBytes: challenges ? (await one('challenges')) / challenges : 0,
    fileBytes: dbBytes,
  };
}

async function startChild(configFile: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--serve', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
    if (err.length > 20_000) err = err.slice(-10_000);
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /READY (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`server exited (${code}): ${err}`)));
  });
  return { url, child };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  await exited;
}

/** The load: random users; an HOTP user sends its next OTP; no user is in flight twice. */
function loadGenerator(url: string, size: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const target = new URL('/validate/check', url);
  const counters = new Map<number, number>();
  const busy = new Set<number>();
  const post = (body: string) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(
        {
          agent,
          host: target.hostname,
          port: target.port,
          path: target.pathname,
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const one = async (): Promise<{ ms: number; accept: boolean }> => {
    let i: number;
    do {
      i = crypto.randomInt(size);
    } while (busy.has(i));
    busy.add(i);
    try {
      let pass = PIN;
      if (isHotp(i)) {
        const c = counters.get(i) ?? 0;
        counters.set(i, c + 1);
        pass += hotpValue(hotpKey(i), c, 6, 'sha1');
      }
      const t0 = performance.now();
      const r = await post(new URLSearchParams({ user: user(i), pass }).toString());
      const ms = performance.now() - t0;
      return { ms, accept: r.status === 200 && r.text.includes('"authentication":"ACCEPT"') };
    } finally {
      busy.delete(i);
    }
  };
  return {
    /** `n` requests one after the other. */
    async sequential(n: number): Promise<Phase> {
      const ms: number[] = [];
      let accept = 0;
      const t0 = performance.now();
      for (let k = 0; k < n; k++) {
        const r = await one();
        ms.push(r.ms);
        if (r.accept) accept++;
      }
      return { ms, accept, seconds: (performance.now() - t0) / 1000 };
    },
    /** `n` requests, `conc` in flight at any time. */
    async concurrent(n: number, conc: number): Promise<Phase> {
      const ms: number[] = [];
      let accept = 0;
      let next = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: conc }, async () => {
          while (next < n) {
            next++;
            const r = await one();
            ms.push(r.ms);
            if (r.accept) accept++;
          }
        }),
      );
      return { ms, accept, seconds: (performance.now() - t0) / 1000 };
    },
    close() {
      agent.destroy();
    },
  };
}

interface Prepared {
  db: Db;
  size: number;
  url: string;
  keyFile: string;
  drop(): Promise<void>;
  fillS: number;
  batch: number;
  challenges: number;
  tokenBytes: number;
  challengeBytes: number;
  fileBytes: number | null;
}

/** A fresh database of `size` tokens (+ challenges for the size figures, deleted again afterwards). */
async function prepare(db: Db, size: number, tmp: string, o: Options): Promise<Prepared> {
  const tag = `${db}_${size}`;
  const scratchDb = await scratch(db, tmp, tag);
  const keyFile = path.join(tmp, 'secrets.key');
  if (!fs.existsSync(keyFile)) fs.writeFileSync(keyFile, crypto.randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  const box = createSecretBox(Buffer.from(fs.readFileSync(keyFile, 'utf8').trim(), 'hex'));
  const store = createStore(scratchDb.url, box);
  try {
    await store.migrate();
    const pinHash = await createPinHasher({ memoryKib: 1024, timeCost: 1, parallelism: 1, maxConcurrent: 1 }).hash(PIN);
    const challenges = Math.min(o.challenges, size * 10);
    log(`${db}, ${f0(size)} tokens: filling (+ ${f0(challenges)} challenges) …`);
    const filled = await fill(db, store.knex, size, challenges, box, pinHash);
    log(
      `  filled in ${filled.seconds.toFixed(1)} s (${f0((size + challenges) / filled.seconds)} rows/s, ${filled.batch} tokens per INSERT)`,
    );
    const sz = await sizes(db, store.knex, scratchDb.url, size, challenges);
    log(`  ${f0(sz.tokenBytes)} bytes per token, ${f0(sz.challengeBytes)} bytes per challenge`);
    // The load sees only the tokens: the size-measurement challenges go again.
    await store.knex('challenges').delete();
    if (db === 'sqlite') await store.knex.raw('pragma wal_checkpoint(TRUNCATE)');
    else await store.knex.raw('vacuum analyze challenges');
    return { db, size, url: scratchDb.url, keyFile, drop: scratchDb.drop, fillS: filled.seconds, batch: filled.batch, challenges, ...sz };
  } catch (err) {
    await scratchDb.drop().catch(() => {});
    throw err;
  } finally {
    await store.close();
  }
}

/** Runs a phase and measures the CPU that processes other than this one and its server children used meanwhile. */
async function withForeignCpu<T>(
  children: readonly ChildProcess[],
  fn: () => Promise<T>,
): Promise<{ result: T; foreignCoreSeconds: number | null }> {
  const kids = () =>
    children.reduce<number | null>((a, c) => {
      const v = processCpuMs(c.pid);
      return a === null || v === null ? null : a + v;
    }, 0);
  const [busy0, own0, kids0] = [machineBusyMs(), ownCpuMs(), kids()];
  const result = await fn();
  const [busy1, own1, kids1] = [machineBusyMs(), ownCpuMs(), kids()];
  if (busy0 === null || busy1 === null || kids0 === null || kids1 === null) return { result, foreignCoreSeconds: null };
  return { result, foreignCoreSeconds: Math.max(0, busy1 - busy0 - (own1 - own0) - (kids1 - kids0)) / 1000 };
}

/**
 * Load on every size of one database, in alternating rounds (1k, 1M, 1k, 1M, …) so that whatever else the machine
 * does meanwhile hits both sizes alike. Each size has its own server child; only one is loaded at a time.
 */
async function runLoad(prepared: readonly Prepared[], tmp: string, o: Options): Promise<Result[]> {
  const servers: Array<{ p: Prepared; url: string; child: ChildProcess; gen: ReturnType<typeof loadGenerator> }> = [];
  try {
    for (const p of prepared) {
      const config = {
        server: { host: '127.0.0.1', port: 0 },
        database: { url: p.url, pool_max: 10 },
        secrets: { key_file: p.keyFile },
        pin: { memory_kib: 1024, time_cost: 1, parallelism: 1 },
        cleanup: { interval_seconds: 0 },
        log: { level: 'warn' },
      };
      const configFile = path.join(tmp, `${p.db}_${p.size}.yaml`);
      fs.writeFileSync(configFile, JSON.stringify(config));
      const { url, child } = await startChild(configFile);
      servers.push({ p, url, child, gen: loadGenerator(url, p.size) });
    }
    const children = servers.map((s) => s.child);
    for (const s of servers) await s.gen.sequential(Math.min(200, o.seq)); // warm-up: JIT, connections, caches
    const acc = servers.map(() => ({ seq: [] as Phase[], conc: [] as Phase[], foreign: 0 as number | null, seconds: 0 }));
    const seqPer = Math.ceil(o.seq / o.rounds);
    const concPer = Math.ceil(o.concRequests / o.rounds);
    for (let r = 0; r < o.rounds; r++) {
      for (const kind of ['seq', 'conc'] as const) {
        for (const [i, s] of servers.entries()) {
          const { result, foreignCoreSeconds } = await withForeignCpu(children, () =>
            kind === 'seq' ? s.gen.sequential(seqPer) : s.gen.concurrent(concPer, o.conc),
          );
          acc[i]![kind].push(result);
          acc[i]!.seconds += result.seconds;
          acc[i]!.foreign = acc[i]!.foreign === null || foreignCoreSeconds === null ? null : acc[i]!.foreign! + foreignCoreSeconds;
        }
      }
      log(`  ${prepared[0]!.db}: round ${r + 1}/${o.rounds} done`);
    }
    return servers.map((s, i) => {
      const a = acc[i]!;
      const sum = (ps: Phase[]) => {
        const ms = ps.flatMap((x) => x.ms);
        const seconds = ps.reduce((t, x) => t + x.seconds, 0);
        return {
          n: ms.length,
          p50: percentile(ms, 0.5),
          p99: percentile(ms, 0.99),
          accept: ps.reduce((t, x) => t + x.accept, 0),
          rps: ms.length / seconds,
        };
      };
      const seq = sum(a.seq);
      const conc = sum(a.conc);
      log(
        `  ${s.p.db} ${f0(s.p.size)}: sequential p50 ${f2(seq.p50)} ms, p99 ${f2(seq.p99)} ms; concurrency ${o.conc}: p50 ${f2(conc.p50)} ms, p99 ${f2(conc.p99)} ms, ${f0(conc.rps)} req/s`,
      );
      return {
        db: s.p.db,
        size: s.p.size,
        fillS: s.p.fillS,
        fillRowsPerS: (s.p.size + s.p.challenges) / s.p.fillS,
        batch: s.p.batch,
        challenges: s.p.challenges,
        tokenBytes: s.p.tokenBytes,
        challengeBytes: s.p.challengeBytes,
        fileBytes: s.p.fileBytes,
        seq,
        conc,
        foreignCores: a.foreign === null ? null : a.foreign / a.seconds,
      };
    });
  } finally {
    for (const s of servers) {
      s.gen.close();
      await stopChild(s.child);
    }
  }
}

function section(results: Result[], o: Options, date: string, seconds: number): string {
  const cpus = os.cpus();
  const fmtCores = (c: number | null) => (c === null ? 'n/a' : c.toFixed(2));
  const lines = [
    BEGIN,
    '## Scale: 1,000 vs 1,000,000 tokens',
    '',
    'Generated by `npm run bench:scale` (bench/scale.ts); do not edit by hand — re-run it (it rewrites only this section, between the `scale:begin` / `scale:end` markers).',
    '',
    `- **Date:** ${date}; whole run ${f0(seconds)} s. **Machine:** ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM; Node ${process.version}.`,
    '- **Fill:** knex multi-row INSERTs inside one transaction (as many rows per INSERT as the bind-parameter limit allows), half spass and half HOTP tokens '
      + '(users u0…, realm `default`, one shared argon2id PIN hash, HOTP secrets AES-256-GCM-encrypted), all indexes of migration 001 in place; '
      + `then ${f0(o.challenges)} pending challenges (at most 10 per token) for the size figures, deleted again before the load.`,
    `- **Load:** one pushgate server per size (\`startServer\`, child process, pool_max 10, audit row per request, near-free PIN hash m=1024 KiB t=1 so that `
      + `the database part of a check is visible) answers \`POST /validate/check\` for uniformly random users among all its tokens: ${f0(o.seq)} sequential requests, `
      + `then ${f0(o.concRequests)} at concurrency ${o.conc} (no user twice in flight; HOTP users send PIN + their next OTP), after 200 warm-up requests. `
      + `The sizes take turns in ${o.rounds} rounds (small, large, small, large, …), so load from elsewhere on the machine hits both alike; `
      + 'the load generator shares the machine. "other CPU" = busy CPU of the whole machine (/proc/stat) minus this benchmark and its servers, in cores, averaged over the load — '
      + 'on PostgreSQL rows it includes the PostgreSQL server itself (its backends are processes of their own), on SQLite rows it is load from elsewhere.',
    '- **Size:** bytes of the table plus all its indexes divided by its rows — SQLite: `dbstat` pages (B-tree pages as stored, including their free space); '
      + 'PostgreSQL: `pg_total_relation_size` after ANALYZE (heap + indexes + TOAST). "database" = the SQLite file after a WAL checkpoint, or `pg_database_size`, with the challenges.',
    '',
    '| database | tokens | fill s (rows/s) | seq. p50 ms | seq. p99 ms | conc. p50 ms | conc. p99 ms | conc. req/s | ACCEPT / answers | bytes / token | bytes / challenge | database | other CPU, cores |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const r of results) {
    lines.push(
      `| ${r.db} | ${f0(r.size)} | ${r.fillS.toFixed(1)} (${f0(r.fillRowsPerS)}) | ${f2(r.seq.p50)} | ${f2(r.seq.p99)} | ${f2(r.conc.p50)} | ${f2(r.conc.p99)} | ${f0(r.conc.rps)} | `
        + `${f0(r.seq.accept + r.conc.accept)} / ${f0(r.seq.n + r.conc.n)} | ${f0(r.tokenBytes)} | ${f0(r.challengeBytes)} | ${r.fileBytes === null ? '—' : `${(r.fileBytes / 2 ** 20).toFixed(1)} MiB`} | ${fmtCores(r.foreignCores)} |`,
    );
  }
  lines.push('');
  for (const db of new Set(results.map((r) => r.db))) {
    const rs = results.filter((r) => r.db === db).sort((a, b) => a.size - b.size);
    if (rs.length < 2) continue;
    const [small, big] = [rs[0]!, rs[rs.length - 1]!];
    lines.push(
      `- **${db}, ${f0(big.size)} vs ${f0(small.size)} tokens:** sequential p50 ×${(big.seq.p50 / small.seq.p50).toFixed(2)}, p99 ×${(big.seq.p99 / small.seq.p99).toFixed(2)}; `
        + `concurrency ${o.conc} p50 ×${(big.conc.p50 / small.conc.p50).toFixed(2)}, p99 ×${(big.conc.p99 / small.conc.p99).toFixed(2)}, req/s ×${(big.conc.rps / small.conc.rps).toFixed(2)}.`,
    );
  }
  lines.push(
    '- Every look-up on the check path is an index probe (tokens by owner; challenges by transaction, by serial + nonce, by expiry), '
      + 'so its cost grows with the B-tree depth — logarithmically — not with the row count; what a larger table costs is cache: the pages of a random user are less often in memory.',
  );
  const bad = results.reduce((a, r) => a + (r.seq.n - r.seq.accept) + (r.conc.n - r.conc.accept), 0);
  lines.push(`- ${bad === 0 ? 'Every answer was ACCEPT.' : `⚠ ${bad} answers were not ACCEPT — a broken run or a bug.`}`);
  const busy = results.filter((r) => r.db === 'sqlite' && r.foreignCores !== null && r.foreignCores >= 0.15);
  if (busy.length)
    lines.push(
      `- ⚠ Other processes used up to ${Math.max(...busy.map((r) => r.foreignCores!)).toFixed(2)} cores during the SQLite load (last column): absolute latencies are pessimistic; the 1k-vs-1M comparison is fairer, as the sizes took turns.`,
    );
  lines.push(
    '',
    'Smaller run: `SCALE_SIZES=1000,100000 SCALE_SEQ=500 SCALE_CONC_REQUESTS=1000 npm run bench:scale -- --no-write`; SQLite only: `SCALE_DBS=sqlite`.',
    END,
  );
  return lines.join('\n');
}

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Replaces only the text between the scale markers (appends markers and section when absent). */
function writeSection(text: string): void {
  const old = fs.existsSync(README) ? fs.readFileSync(README, 'utf8') : '';
  const b = old.indexOf(BEGIN);
  const e = old.indexOf(END);
  const next =
    b >= 0 && e > b
      ? old.slice(0, b) + text + old.slice(e + END.length)
      : (old === '' || old.endsWith('\n\n') ? old : old.endsWith('\n') ? old + '\n' : old + '\n\n') + text + '\n';
  fs.writeFileSync(README, next);
}

async function main(): Promise<void> {
  const sizesList = (process.env.SCALE_SIZES ?? '1000,1000000').split(',').map((s) => Number(s.trim().replace(/_/g, '')));
  if (sizesList.some((n) => !Number.isInteger(n) || n < 10)) {
    process.stderr.write('SCALE_SIZES must be integers >= 10\n');
    process.exit(2);
  }
  const pgAdmin = new URL(process.env.SCALE_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test');
  const pgUp = await reachable(pgAdmin.hostname, Number(pgAdmin.port || 5432));
  if (!process.env.SCALE_DBS && !pgUp) log(`PostgreSQL at ${pgAdmin.hostname}:${pgAdmin.port || 5432} is unreachable: SQLite only`);
  const dbs = (process.env.SCALE_DBS ?? (pgUp ? 'sqlite,postgres' : 'sqlite')).split(',').map((s) => s.trim()) as Db[];
  if (dbs.some((d) => d !== 'sqlite' && d !== 'postgres')) {
    process.stderr.write('SCALE_DBS: sqlite and/or postgres\n');
    process.exit(2);
  }
  const o: Options = {
    seq: envInt('SCALE_SEQ', 2000, 10),
    concRequests: envInt('SCALE_CONC_REQUESTS', 4000, 10),
    conc: envInt('SCALE_CONC', 16, 1),
    challenges: envInt('SCALE_CHALLENGES', 100_000, 0),
    rounds: envInt('SCALE_ROUNDS', 4, 1),
  };
  const write = !process.argv.includes('--no-write');
  const date = new Date().toISOString();
  const t0 = performance.now();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-scale-'));
  const results: Result[] = [];
  try {
    for (const db of dbs) {
      const prepared: Prepared[] = [];
      try {
        for (const size of sizesList) prepared.push(await prepare(db, size, tmp, o));
        results.push(...(await runLoad(prepared, tmp, o)));
      } finally {
        for (const p of prepared) await p.drop().catch((err: unknown) => log(`drop failed: ${String(err)}`));
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const text = section(results, o, date, (performance.now() - t0) / 1000);
  process.stdout.write(text + '\n');
  if (write) {
    writeSection(text);
    log('wrote the scale section of bench/README.md');
  } else log('README not written (--no-write)');
}

// ---- entry: the runner, or (child mode) the server --------------------------------------------------------------
if (process.argv[2] === '--serve') {
  const { startServer } = await import('../server/main.ts');
  const running = await startServer(process.argv[3]!, { log: (line) => process.stderr.write(line + '\n') });
  process.once('SIGTERM', () => {
    void running.stop('SIGTERM').then(() => process.exit(0));
  });
  process.stdout.write(`READY ${running.url}\n`);
} else {
  await main();
}
