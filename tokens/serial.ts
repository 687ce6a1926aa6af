/** Token serial numbers. */
import { randomBytes } from 'node:crypto';

const SERIAL_RE = /^[A-Za-z0-9_.:-]{1,40}$/;

/** `prefix` followed by 8 random upper-case hex characters, e.g. `OATH1A2B3C4D`. */
export function generateSerial(prefix: string): string {
  return prefix + randomBytes(4).toString('hex').toUpperCase();
}

/** 1–40 characters of `A–Z a–z 0–9 _ . : -` (so never `*`, which eduMFA treats as a wildcard). */
export function isValidSerial(serial: string): boolean {
  return SERIAL_RE.test(serial);
}
