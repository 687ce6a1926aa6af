/**
 * Pure policy filter matching (protocol.md §7.3): value lists (user, realm, resolver), client IP/CIDR lists and
 * time expressions. No I/O, no clock: callers pass the values and the Date.
 */
import { isIPv4, isIPv6 } from 'node:net';

// ---------------------------------------------------------------------------------------------------------------
// Value lists

const regexCache = new Map<string, RegExp | null>();

function anchoredRegex(entry: string): RegExp | null {
  let re = regexCache.get(entry);
  if (re === undefined) {
    try {
      re = new RegExp(`^(?:${entry})$`, 'u');
    } catch {
      re = null;
    }
    regexCache.set(entry, re);
  }
  return re;
}

/** True when `entry` (without its `!`) compiles as an anchored regular expression. */
export function isValidPatternEntry(entry: string): boolean {
  return entry === '*' || anchoredRegex(entry) !== null;
}

function entryMatches(entry: string, value: string): boolean {
  if (entry === '*' || entry === value) return true;
  return anchoredRegex(entry)?.test(value) ?? false;
}

/**
 * Filter on a list of entries: empty list → match. Each entry is `*`, an exact value or an anchored regex
 * (`^entry$`); entries prefixed with `!` exclude. A value that hits an exclusion never matches; otherwise it
 * matches when it hits a positive entry, or when there are no positive entries at all.
 */
export function matchesValueList(entries: readonly string[], value: string): boolean {
  if (entries.length === 0) return true;
  let hasPositive = false;
  let positiveHit = false;
  for (const entry of entries) {
    if (entry.startsWith('!')) {
      if (entryMatches(entry.slice(1), value)) return false;
    } else {
      hasPositive = true;
      if (!positiveHit && entryMatches(entry, value)) positiveHit = true;
    }
  }
  return hasPositive ? positiveHit : true;
}

// ---------------------------------------------------------------------------------------------------------------
// Client IP / CIDR

interface IpAddress {
  readonly v: 4 | 6;
  readonly n: bigint;
}

export interface IpNetwork {
  readonly v: 4 | 6;
  readonly base: bigint;
  readonly prefix: number;
}

const MAPPED_PREFIX = 0xffffn;

function parseIpv4(s: string): bigint {
  return s.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function parseIpv6(s: string): bigint {
  let text = s;
  let tail: bigint | null = null;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    tail = parseIpv4(text.slice(lastColon + 1));
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const headParts = head === '' ? [] : head.split(':');
  const restParts = rest === undefined || rest === '' ? [] : rest.split(':');
  const missing = 8 - headParts.length - restParts.length;
  const groups = [...headParts, ...Array<string>(rest === undefined ? 0 : missing).fill('0'), ...restParts];
  let n = groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
  if (tail !== null) n = (n & ~0xffffffffn) | tail;
  return n;
}

/** Parses an IPv4 or IPv6 address; an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) becomes IPv4. */
export function parseIp(s: string): IpAddress | null {
  const text = s.trim();
  if (isIPv4(text)) return { v: 4, n: parseIpv4(text) };
  const noZone = text.replace(/%.*$/u, '');
  if (!isIPv6(noZone)) return null;
  const n = parseIpv6(noZone);
  if (n >> 32n === MAPPED_PREFIX) return { v: 4, n: n & 0xffffffffn };
  return { v: 6, n };
}

const networkCache = new Map<string, IpNetwork | null>();

/** Parses `addr` or `addr/prefix` (without `!`); null when invalid. Host bits are ignored. */
export function parseNetwork(entry: string): IpNetwork | null {
  let net = networkCache.get(entry);
  if (net !== undefined) return net;
  net = null;
  const m = /^([^/\s]+)(?:\/(\d{1,3}))?$/u.exec(entry.trim());
  const ip = m ? parseIp(m[1]!) : null;
  if (m && ip) {
    const mappedInput = ip.v === 4 && !isIPv4(m[1]!);
    const bits = ip.v === 4 ? 32 : 128;
    let prefix = m[2] === undefined ? bits : Number(m[2]);
    if (mappedInput && m[2] !== undefined) prefix -= 96; // `::ffff:10.0.0.0/104` → `10.0.0.0/8`
    if (prefix >= 0 && prefix <= bits) {
      const shift = BigInt(bits - prefix);
      net = { v: ip.v, base: (ip.n >> shift) << shift, prefix };
    }
  }
  networkCache.set(entry, net);
  return net;
}

/** True when `entry` is a valid client filter entry: an IP or CIDR, optionally prefixed with `!`. */
export function isValidClientEntry(entry: string): boolean {
  return parseNetwork(entry.startsWith('!') ? entry.slice(1) : entry) !== null;
}

function networkContains(net: IpNetwork, ip: IpAddress): boolean {
  if (net.v !== ip.v) return false;
  const shift = BigInt((net.v === 4 ? 32 : 128) - net.prefix);
  return ip.n >> shift === net.base >> shift;
}

/**
 * Client filter: empty list → match. Otherwise the client must be a parseable IP, not inside any `!` entry, and
 * inside some positive entry (or there are only `!` entries). Invalid entries never match.
 */
export function matchesClient(entries: readonly string[], ip: string | undefined): boolean {
  if (entries.length === 0) return true;
  const addr = ip === undefined ? null : parseIp(ip);
  if (addr === null) return false;
  let hasPositive = false;
  let positiveHit = false;
  for (const entry of entries) {
    const negative = entry.startsWith('!');
    const net = parseNetwork(negative ? entry.slice(1) : entry);
    if (negative) {
      if (net && networkContains(net, addr)) return false;
    } else {
      hasPositive = true;
      if (!positiveHit && net && networkContains(net, addr)) positiveHit = true;
    }
  }
  return hasPositive ? positiveHit : true;
}

// ---------------------------------------------------------------------------------------------------------------
// Time expressions

export interface TimeWindow {
  /** Days as `Date#getDay()` numbers (0 = Sunday). */
  readonly days: readonly number[];
  /** Minutes since local midnight, start inclusive, end exclusive. */
  readonly start: number;
  readonly end: number;
}

export interface TimeExpression {
  readonly source: string;
  readonly windows: readonly TimeWindow[];
}

const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const ITEM_RE = /^([A-Za-z]+)(?:\s*-\s*([A-Za-z]+))?\s*:\s*(\d{1,2})(?::(\d{2}))?\s*-\s*(\d{1,2})(?::(\d{2}))?$/u;

function parseDay(name: string): number {
  const day = DAY_NAMES.indexOf(name.toLowerCase());
  if (day < 0) throw new Error(`unknown day '${name}' (use Mon, Tue, Wed, Thu, Fri, Sat, Sun)`);
  return day;
}

function parseClock(hours: string, minutes: string | undefined, item: string): number {
  const h = Number(hours);
  const m = minutes === undefined ? 0 : Number(minutes);
  if (h > 24 || m > 59 || (h === 24 && m !== 0))
    throw new Error(`'${hours}${minutes === undefined ? '' : `:${minutes}`}' in '${item}' is not a time of day`);
  return h * 60 + m;
}

/**
 * Parses an eduMFA time expression: comma-separated items `<day>[-<day>]: <H>[:MM]-<H>[:MM]`, e.g.
 * `Mon-Fri: 9:00-17:30, Sat: 9-12`. Day ranges may wrap (`Fri-Mon`); the end time must be after the start time
 * (`24:00` is allowed as an end). Throws an Error describing the first problem.
 */
export function parseTimeExpression(s: string): TimeExpression {
  const source = s.trim();
  if (source === '') throw new Error('empty time expression');
  const windows: TimeWindow[] = [];
  for (const rawItem of source.split(',')) {
    const item = rawItem.trim();
    const m = ITEM_RE.exec(item);
    if (!m) throw new Error(`'${item}' does not look like 'Mon-Fri: 9:00-17:30'`);
    const first = parseDay(m[1]!);
    const last = m[2] === undefined ? first : parseDay(m[2]);
    const days: number[] = [];
    for (let d = first; ; d = (d + 1) % 7) {
      days.push(d);
      if (d === last) break;
    }
    const start = parseClock(m[3]!, m[4], item);
    const end = parseClock(m[5]!, m[6], item);
    if (end <= start) throw new Error(`in '${item}' the end time must be after the start time`);
    windows.push(Object.freeze({ days: Object.freeze(days), start, end }));
  }
  return Object.freeze({ source, windows: Object.freeze(windows) });
}

/** True when `date` (server local time) lies in one of the expression's windows. */
export function matchesTime(expr: TimeExpression | string, date: Date): boolean {
  const parsed = typeof expr === 'string' ? parseTimeExpression(expr) : expr;
  const day = date.getDay();
  const minute = date.getHours() * 60 + date.getMinutes();
  return parsed.windows.some((w) => w.days.includes(day) && minute >= w.start && minute < w.end);
}
