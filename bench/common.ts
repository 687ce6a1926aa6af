/** What bench/server.ts enrolls and bench/run.ts sends: users, PIN, serials and deterministic HOTP keys. */
import { createHash } from 'node:crypto';

export const PIN = 'bench-pin-1234';
export const spassUser = (i: number): string => `sp${i}`;
export const hotpUser = (i: number): string => `ho${i}`;
/** 20-byte HOTP (sha1) key of benchmark user i: both sides derive it, nothing secret. */
export const hotpKey = (i: number): Buffer => createHash('sha1').update(`pushgate-bench-hotp-${i}`).digest();

/** Messages between bench/run.ts and its server children over the IPC channel. */
export interface StatsReply {
  type: 'stats';
  cpuUserUs: number;
  cpuSystemUs: number;
  pinActive: number;
  pinWaiting: number;
  rssBytes: number;
}
