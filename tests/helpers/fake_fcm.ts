/**
 * A fake FCM HTTP v1 endpoint on loopback, reached through the real firebase-admin HTTP path (toolchain.md §3): a
 * Credential that never calls Google and an https.Agent whose connections are plain TCP to this server. The module
 * is never mocked. Modes: `ok`, `unregistered` (404 + FcmError UNREGISTERED), `error500`, `hang` (never answers).
 * `POST /token` answers a service-account OAuth exchange (for channels built from a service-account file).
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Credential } from 'firebase-admin/app';
import type { FirebaseTestOptions } from '../../server/push/channel.ts';

export type FcmMode = 'ok' | 'unregistered' | 'error500' | 'hang';

export interface FcmRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: any;
}

export interface FakeFcm {
  mode: FcmMode;
  readonly projectId: string;
  readonly received: FcmRequest[];
  /** Options for createPushServices / createFirebaseChannel. */
  readonly firebase: FirebaseTestOptions;
  /** Resolves with the next request the fake receives (already received ones are not counted). */
  nextRequest(): Promise<FcmRequest>;
  close(): Promise<void>;
}

export async function startFakeFcm(projectId = 'demo-project'): Promise<FakeFcm> {
  const received: FcmRequest[] = [];
  const waiting: Array<(r: FcmRequest) => void> = [];
  let mode: FcmMode = 'ok';
  let seq = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        /* keep text */
      }
      const entry: FcmRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body };
      received.push(entry);
      for (const w of waiting.splice(0)) w(entry);
      const json = (status: number, doc: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
        res.end(JSON.stringify(doc));
      };
      if (entry.path === '/token') {
        // Google's OAuth token endpoint (service-account JWT bearer grant), reached through the same agent.
        return json(200, { access_token: 'fake-oauth-token', expires_in: 3600, token_type: 'Bearer' });
      }
      if (mode === 'hang') return;
      if (mode === 'ok') return json(200, { name: `projects/${projectId}/messages/${++seq}` });
      if (mode === 'unregistered') {
        return json(404, {
          error: {
            code: 404,
            message: 'Requested entity was not found.',
            status: 'NOT_FOUND',
            details: [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'UNREGISTERED' }],
          },
        });
      }
      return json(500, { error: { code: 500, message: 'Internal error encountered.', status: 'INTERNAL' } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;

  class LoopbackAgent extends https.Agent {
    override createConnection(): net.Socket {
      return net.connect(port, '127.0.0.1');
    }
  }
  const agent = new LoopbackAgent({ keepAlive: true });
  const credential: Credential = { getAccessToken: async () => ({ access_token: 'fake-access-token', expires_in: 3600 }) };

  return {
    get mode() {
      return mode;
    },
    set mode(m: FcmMode) {
      mode = m;
    },
    projectId,
    received,
    firebase: { credential, httpAgent: agent, projectId },
    nextRequest: () => new Promise((resolve) => waiting.push(resolve)),
    async close() {
      agent.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
