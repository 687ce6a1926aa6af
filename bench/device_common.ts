/** Shared by bench/device.ts and its children: the bench devices' serials and keys, and the IPC messages. */
import { createHash, type KeyObject } from 'node:crypto';
import { ed25519FromSeed } from '../tokens/push/device.ts';

export const DEVICE_PIN = 'bench-pin-1234';
/** The load devices (the 10,000 connected ones): serials BDEV0…, no user. */
export const loadSerial = (i: number): string => `BDEV${i}`;
/** The latency devices: one user and token each (long-poll, SSE, v1 app). */
export const LATENCY = {
  longpoll: { serial: 'BLAT0001', user: 'latlongpoll' },
  sse: { serial: 'BLAT0002', user: 'latsse' },
  v1: { serial: 'BLAT0003', user: 'latv1' },
} as const;

/** The Ed25519 key of a bench device, derived from its serial: both sides make it, nothing secret. */
export function deviceKey(serial: string): { privateKey: KeyObject; publicKey: KeyObject } {
  return ed25519FromSeed(createHash('sha256').update(`pushgate-bench-device-${serial}`).digest());
}

export interface DeviceStats {
  type: 'stats';
  rssBytes: number;
  cpuUserUs: number;
  cpuSystemUs: number;
  /** Open long-polls and streams (the answer bus's listeners). */
  busWaiting: number;
  /** process.memoryUsage(): V8 heap in use, memory of C++ objects bound to JS (sockets, parsers, keys), Buffers. */
  heapUsedBytes: number;
  externalBytes: number;
  arrayBuffersBytes: number;
}

/** What the server child prints after READY: the v1 phone's private key (PKCS#8 PEM) when it enrolled one. */
export interface DeviceReady {
  enrollMs: number;
  devices: number;
  phonePrivatePem: string | null;
  transport: string;
}
