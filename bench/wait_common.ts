/** What bench/wait.ts and its server children (bench/wait_server.ts) share: the admin and the IPC messages. */

export const ADMIN = 'wait-bench-admin';
export const ADMIN_PASSWORD = 'wait-bench-admin-password';

/** `gc: true` runs a full garbage collection first (children run with --expose-gc), for the live heap size. */
export type WaitChildRequest = { type: 'stats'; gc?: boolean };
export interface WaitChildReply {
  type: 'stats';
  /** knex queries issued by this process since start. */
  queries: number;
  /** deps.waits.active: waiting /validate/check requests. */
  waitsActive: number;
  /** deps.answers.waiting: listeners registered on the answer bus (one per waiting login). */
  busWaiting: number;
  heapUsedBytes: number;
  /** V8's heap size (used + free pages it kept), external memory and ArrayBuffers: where the RSS beyond the live heap is. */
  heapTotalBytes: number;
  externalBytes: number;
  /** process.memoryUsage().rss in this process (the parent reads /proc/<pid>/status itself; this is for after a GC). */
  rssBytes: number;
}
