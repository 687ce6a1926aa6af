/** What bench/push.ts and its server child bench/push_server.ts share: the admin, realms, channel and IPC messages. */

export const ADMIN = 'bench-admin';
export const ADMIN_PASSWORD = 'bench-admin-password';
/** Realm whose enrollment policy is `poll only`, and realm whose enrollment policy names the Firebase channel. */
export const POLL_REALM = 'poll';
export const FCM_REALM = 'fcm';
export const CHANNEL = 'fcm';
export const FCM_PROJECT = 'bench-project';
export const PUBLIC_URL = 'https://mfa.bench.invalid';

/** `premade`: the key pool hands out pre-generated RSA-4096 keys at once (a warm pool); `generate`: a fresh key per take. */
export type KeyMode = 'premade' | 'generate';

export type ChildRequest = { type: 'stats' } | { type: 'keys'; mode: KeyMode };
export type ChildReply = { type: 'stats'; cpuUserUs: number; cpuSystemUs: number; rssBytes: number } | { type: 'keys'; mode: KeyMode };
