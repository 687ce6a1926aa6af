/**
 * A private OpenLDAP server for tests: Debian's `slapd` with a generated slapd.conf (mdb backend) in a temp dir, a
 * generated LDIF of users loaded with `slapadd` before the start, on a free port of 127.0.0.1 — like the PostgreSQL
 * resilience test does with initdb. StartTLS with a throw-away CA made by the `openssl` CLI (when it is there).
 *
 * Active Directory is SIMULATED: `ad.schema` below declares AD's attribute names with AD's OIDs (sAMAccountName,
 * userPrincipalName, objectGUID, userAccountControl) and AD's `user`/`computer` classes, but with OpenLDAP matching
 * rules (AD's own matching, objectCategory short names, referrals, Kerberos/NTLM binds and its 1000-entry page
 * limit are not simulated). The bit-AND matching rule of the AD preset's filter (1.2.840.113556.1.4.803) is the
 * real one: OpenLDAP implements it under AD's OID.
 *
 * The server allows unauthenticated binds (`allow bind_anon_dn`: a DN with an empty password succeeds, as many
 * directories do), so a client that sent an empty password would "log in" — the tests show pushgate does not.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './wait.ts';

export const SLAPD = '/usr/sbin/slapd';
export const SLAPADD = '/usr/sbin/slapadd';
const MODULES = '/usr/lib/ldap';
const SCHEMA = '/etc/ldap/schema';

/** Why slapd cannot run here, or null. */
export function slapdMissing(): string | null {
  for (const f of [SLAPD, SLAPADD, path.join(SCHEMA, 'inetorgperson.schema')])
    if (!fs.existsSync(f)) return `no OpenLDAP server (${f} is missing; Debian packages slapd and ldap-utils)`;
  if (!fs.existsSync(path.join(MODULES, 'back_mdb.so')) && !spawnSync(SLAPD, ['-VVV']).stdout?.toString().includes('mdb'))
    return `no mdb backend for slapd in ${MODULES}`;
  return null;
}

export const opensslMissing = (): boolean => spawnSync('openssl', ['version']).status !== 0;

export const BASE = 'dc=example,dc=org';
export const ADMIN_DN = `cn=admin,${BASE}`;
export const ADMIN_PW = 'admin-secret';
export const SERVICE_DN = `cn=pushgate,ou=services,${BASE}`;
export const SERVICE_PW = 'service pw with spaces';

/** AD's attribute names and OIDs, with OpenLDAP matching rules (see the file comment: a simulation). */
const AD_SCHEMA = `
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName' EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName' EQUALITY caseIgnoreMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2 NAME 'objectGUID' EQUALITY octetStringMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl' EQUALITY integerMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP inetOrgPerson STRUCTURAL
  MAY ( sAMAccountName $ userPrincipalName $ objectGUID $ userAccountControl ) )
objectclass ( 1.2.840.113556.1.3.30 NAME 'computer' SUP user STRUCTURAL )
`;

/** An {SSHA} userPassword value, as slappasswd makes them. */
export function ssha(password: string): string {
  const salt = crypto.randomBytes(8);
  const digest = crypto
    .createHash('sha1')
    .update(Buffer.concat([Buffer.from(password, 'utf8'), salt]))
    .digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`;
}

export interface LdapUser {
  uid: string;
  password?: string;
  givenName?: string;
  sn: string;
  mail?: string;
  telephoneNumber?: string;
  /** Under ou=people (default) or another ou. */
  ou?: string;
}
export interface AdUser {
  sAMAccountName: string;
  userPrincipalName: string;
  password: string;
  givenName: string;
  sn: string;
  mail?: string;
  /** 16 bytes. */
  objectGUID: Buffer;
  userAccountControl: number;
  computer?: boolean;
}

function ldif(people: readonly LdapUser[], ad: readonly AdUser[]): string {
  const e: string[] = [
    `dn: ${BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n`,
    `dn: ou=people,${BASE}\nobjectClass: organizationalUnit\nou: people\n`,
    `dn: ou=others,${BASE}\nobjectClass: organizationalUnit\nou: others\n`,
    `dn: ou=services,${BASE}\nobjectClass: organizationalUnit\nou: services\n`,
    `dn: ou=ad,${BASE}\nobjectClass: organizationalUnit\nou: ad\n`,
    `dn: ${SERVICE_DN}\nobjectClass: person\ncn: pushgate\nsn: service\nuserPassword: ${ssha(SERVICE_PW)}\n`,
  ];
  for (const u of people) {
    const lines = [
      `dn: uid=${u.uid},ou=${u.ou ?? 'people'},${BASE}`,
      'objectClass: inetOrgPerson',
      `uid: ${u.uid}`,
      `cn: ${u.givenName ?? u.uid} ${u.sn}`,
      `sn: ${u.sn}`,
    ];
    if (u.givenName) lines.push(`givenName: ${u.givenName}`);
    if (u.mail) lines.push(`mail: ${u.mail}`);
    if (u.telephoneNumber) lines.push(`telephoneNumber: ${u.telephoneNumber}`);
    if (u.password) lines.push(`userPassword: ${ssha(u.password)}`);
    e.push(lines.join('\n') + '\n');
  }
  for (const u of ad) {
    const lines = [
      `dn: cn=${u.givenName} ${u.sn},ou=ad,${BASE}`,
      `objectClass: ${u.computer ? 'computer' : 'user'}`,
      `cn: ${u.givenName} ${u.sn}`,
      `sn: ${u.sn}`,
      `givenName: ${u.givenName}`,
      `sAMAccountName: ${u.sAMAccountName}`,
      `userPrincipalName: ${u.userPrincipalName}`,
      `objectGUID:: ${u.objectGUID.toString('base64')}`,
      `userAccountControl: ${u.userAccountControl}`,
      `userPassword: ${ssha(u.password)}`,
    ];
    if (u.mail) lines.push(`mail: ${u.mail}`);
    e.push(lines.join('\n') + '\n');
  }
  return e.join('\n');
}

export interface PrivateSlapd {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** The CA certificate file (PEM) of the server's certificate, or null without openssl. */
  readonly caFile: string | null;
  /** A second, unrelated CA (the server's certificate does not chain to it). */
  readonly otherCaFile: string | null;
  start(): Promise<void>;
  /** Kills the server (SIGKILL: as if the host went away) and waits until it is gone. */
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A CA and a server certificate for 127.0.0.1 / localhost signed by it, plus an unrelated CA. */
function makeCerts(dir: string): { ca: string; other: string; cert: string; key: string } {
  const ext = path.join(dir, 'san.ext');
  fs.writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n');
  // A fresh P-256 key (no passphrase) with its request or self-signed certificate: `-keyout NAME.key -subj /CN=…`.
  const newKey = (name: string, cn: string) => [
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-subj',
    `/CN=${cn}`,
  ];
  openssl(['req', '-x509', ...newKey('ca', 'pushgate test CA'), '-days', '2', '-out', 'ca.pem'], dir);
  openssl(['req', '-x509', ...newKey('other', 'another CA'), '-days', '2', '-out', 'other.pem'], dir);
  openssl(['req', ...newKey('server', '127.0.0.1'), '-out', 'server.csr'], dir);
  const signedByCa = ['-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', ext];
  openssl(['x509', '-req', '-in', 'server.csr', ...signedByCa, '-out', 'server.pem'], dir);
  return {
    ca: path.join(dir, 'ca.pem'),
    other: path.join(dir, 'other.pem'),
    cert: path.join(dir, 'server.pem'),
    key: path.join(dir, 'server.key'),
  };
}

const portOpen = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

export async function privateSlapd(people: readonly LdapUser[], ad: readonly AdUser[] = []): Promise<PrivateSlapd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-slapd-'));
  const data = path.join(dir, 'data');
  fs.mkdirSync(data);
  fs.writeFileSync(path.join(dir, 'ad.schema'), AD_SCHEMA);
  const certs = opensslMissing() ? null : makeCerts(dir);
  const hasMdbModule = fs.existsSync(path.join(MODULES, 'back_mdb.so'));
  const conf = [
    `include ${SCHEMA}/core.schema`,
    `include ${SCHEMA}/cosine.schema`,
    `include ${SCHEMA}/inetorgperson.schema`,
    `include ${path.join(dir, 'ad.schema')}`,
    `pidfile ${path.join(dir, 'slapd.pid')}`,
    ...(hasMdbModule ? [`modulepath ${MODULES}`, 'moduleload back_mdb'] : []),
    'allow bind_anon_dn',
    'sizelimit 500',
    ...(certs ? [`TLSCACertificateFile ${certs.ca}`, `TLSCertificateFile ${certs.cert}`, `TLSCertificateKeyFile ${certs.key}`] : []),
    'database mdb',
    'maxsize 16777216',
    `suffix "${BASE}"`,
    `rootdn "${ADMIN_DN}"`,
    `rootpw ${ADMIN_PW}`,
    `directory ${data}`,
    // Users read their own entry; the service account reads everything but passwords; anonymous can only bind.
    'access to attrs=userPassword by anonymous auth by * none',
    `access to * by dn.exact="${SERVICE_DN}" read by self read by * none`,
    '',
  ].join('\n');
  const confFile = path.join(dir, 'slapd.conf');
  fs.writeFileSync(confFile, conf);
  const ldifFile = path.join(dir, 'users.ldif');
  fs.writeFileSync(ldifFile, ldif(people, ad));
  const add = spawnSync(SLAPADD, ['-f', confFile, '-l', ldifFile], { encoding: 'utf8' });
  if (add.status !== 0) throw new Error(`slapadd failed: ${add.stderr}`);
  const port = await freePort();
  let child: ChildProcess | null = null;
  let output = '';
  const s: PrivateSlapd = {
    port,
    url: `ldap://127.0.0.1:${port}`,
    dir,
    caFile: certs?.ca ?? null,
    otherCaFile: certs?.other ?? null,
    async start() {
      // -d 0: stay in the foreground (the test owns the process) without debug output.
      child = spawn(SLAPD, ['-f', confFile, '-h', `ldap://127.0.0.1:${port}/`, '-d', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout!.on('data', (b) => (output += b));
      child.stderr!.on('data', (b) => (output += b));
      const proc = child;
      for (let i = 0; i < 200; i++) {
        if (proc.exitCode !== null) throw new Error(`slapd exited with ${proc.exitCode}: ${output}`);
        if (await portOpen(port)) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`slapd did not listen on ${port}: ${output}`);
    },
    async stop() {
      const proc = child;
      child = null;
      if (!proc || proc.exitCode !== null) return;
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await gone;
    },
    async destroy() {
      await s.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await s.start();
  return s;
}
