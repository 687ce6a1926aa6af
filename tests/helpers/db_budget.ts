/**
 * The suite's database connection budget: how many connections the tests can hold at once on the shared PostgreSQL
 * or MariaDB server, as a number that is computed here (and checked when this module loads) instead of "whatever
 * the test files happen to open". Two CI runs once failed with PostgreSQL's `sorry, too many clients already`
 * (53300) because every world of every concurrently running test opened a pool of 10.
 *
 *   ava runs at most FILES_AT_ONCE test files at once (package.json `ava.concurrency`; one process each);
 *   in each process at most TESTS_AT_ONCE tests hold database worlds at once (the lease below);
 *   a test holds at most WORLDS_PER_TEST world places (enforced below) plus PER_TEST_EXTRA connections of its own
 *   (an admin connection creating/dropping a world's database — on PostgreSQL one per process, kept, which is fewer
 *   — or a test's own LISTEN client);
 *   a world place is PER_WORLD connections: a knex pool of database.pool_max = WORLD_POOL_MAX and, on PostgreSQL,
 *   the answer bus's LISTEN connection (1) and NOTIFY pool (max 2; server/auth/bus_transports.ts). A world with a
 *   bigger pool (a test that needs one says so) takes as many places as its connections fill (`placesFor`).
 *
 *   peak ≤ FILES_AT_ONCE × TESTS_AT_ONCE × (WORLDS_PER_TEST × PER_WORLD + PER_TEST_EXTRA)
 *        = 2 × 3 × (2 × 5 + 1) = 66  on PostgreSQL (default max_connections 100, 3 reserved for superusers)
 *        = 2 × 3 × (2 × 2 + 1) = 30  on MariaDB (default max_connections 151)
 *
 * Processes that are not worlds take a lease too: the two server processes of tests/server/two_nodes.test.ts run
 * with pool_max WORLD_POOL_MAX, so they count as a test's two worlds; a CLI world (tests/cli/cli_world.ts) has at
 * most one CLI command and one `deps()` open at a time, i.e. two worlds. A private PostgreSQL (resilience) does not
 * count: it is another server.
 * Measured (scripts/db_peak.sh, sampling every 200 ms the connections this checkout's processes hold; whole suite on a
 * 2-core machine shared with five other suites, load average ~20): PostgreSQL 18 (20 in pg_stat_activity by
 * application_name), MariaDB 21 — before, with pools of 10 and ava's one file per core, a single file could exceed 100.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const TESTS_AT_ONCE = 3;
export const WORLDS_PER_TEST = 2;
export const WORLD_POOL_MAX = 2;
export const PER_WORLD = { postgres: WORLD_POOL_MAX + 1 + 2, mysql: WORLD_POOL_MAX } as const;
export const PER_TEST_EXTRA = 1;
/** Keep the computed peak at most this (PostgreSQL's default max_connections 100 minus reserve and headroom). */
export const CONNECTION_CAP = 80;

/** package.json's `ava.concurrency`: without it ava runs one file per CPU core, which makes the peak depend on the machine. */
function avaConcurrency(): number {
  const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../package.json');
  const n = (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { ava?: { concurrency?: unknown } }).ava?.concurrency;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1)
    throw new Error('package.json must set ava.concurrency (tests/helpers/db_budget.ts)');
  return n;
}
export const FILES_AT_ONCE = avaConcurrency();

export function peakConnections(db: keyof typeof PER_WORLD): number {
  return FILES_AT_ONCE * TESTS_AT_ONCE * (WORLDS_PER_TEST * PER_WORLD[db] + PER_TEST_EXTRA);
}
for (const db of ['postgres', 'mysql'] as const) {
  if (peakConnections(db) > CONNECTION_CAP) {
    throw new Error(
      `test connection budget on ${db}: ${peakConnections(db)} > ${CONNECTION_CAP}; lower ava.concurrency or TESTS_AT_ONCE (tests/helpers/db_budget.ts)`,
    );
  }
}

// The lease: a counting semaphore of TESTS_AT_ONCE, held per owner (a test's ExecutionContext, or the world itself).
let free = TESTS_AT_ONCE;
const queue: Array<() => void> = [];
const held = new WeakMap<object, { worlds: number; ready: Promise<void> }>();

/**
 * World places a world with database.pool_max `poolMax` takes: 1 up to WORLD_POOL_MAX; a bigger pool (a test that
 * needs one, e.g. to bring 100 parallel statements to the database together) takes as many places as its
 * connections need, so the bound above still holds.
 */
export function placesFor(poolMax: number): number {
  return poolMax <= WORLD_POOL_MAX ? 1 : Math.ceil((poolMax + PER_WORLD.postgres - WORLD_POOL_MAX) / PER_WORLD.postgres);
}

/**
 * Takes `places` world places of `owner` (waiting for a free lease when the owner has none yet); returns their
 * release. Pass the same owner (the test's `t`) for every world a test holds at once: two worlds of one test that
 * took separate leases could wait for each other forever.
 */
export async function leaseWorld(owner: object, places = 1): Promise<() => void> {
  let entry = held.get(owner);
  const taken = (entry?.worlds ?? 0) + places;
  if (taken > WORLDS_PER_TEST)
    throw new Error(
      `a test holds at most ${WORLDS_PER_TEST} world places at once, this one asked for ${taken} (tests/helpers/db_budget.ts)`,
    );
  if (entry) {
    entry.worlds += places;
    await entry.ready;
  } else {
    let ready: Promise<void>;
    if (free > 0) {
      free--;
      ready = Promise.resolve();
    } else {
      ready = new Promise<void>((resolve) => queue.push(resolve));
    }
    entry = { worlds: places, ready };
    held.set(owner, entry);
    await ready;
  }
  const e = entry;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    e.worlds -= places;
    if (e.worlds > 0) return;
    held.delete(owner);
    const next = queue.shift();
    if (next) next();
    else free++;
  };
}
