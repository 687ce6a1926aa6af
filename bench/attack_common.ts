/** What bench/attack.ts and its children (attack_server.ts, attack_flood.ts) share. */

export interface AttackStats {
  type: 'stats';
  cpuUserUs: number;
  cpuSystemUs: number;
  rssBytes: number;
  /** The node's counters (`deps.metrics.counters`), e.g. `pushgate_challenges_created_total{type="edupush"}`. */
  counters: Record<string, number>;
}

/** The flood child's task (argv[2], JSON) and its answer (one JSON line on stdout). */
export interface FloodTask {
  url: string;
  connections: number;
  seconds: number;
  body: string;
}
export interface FloodResult {
  requests: number;
  byStatus: Record<string, number>;
  errors: number;
  timeouts: number;
  p50: number;
  p99: number;
  cpuMs: number;
}
