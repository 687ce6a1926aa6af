/**
 * HTTP/1.1 over a plain TCP socket: the request goes out byte for byte as given (invalid UTF-8, NUL bytes, bad
 * percent sequences, odd headers) — fetch and node:http would normalise or refuse such requests before sending.
 * The reply is parsed just enough for assertions (status, headers, body; chunked bodies are decoded).
 */
import net from 'node:net';

export interface RawRequest {
  method: string;
  /** The request target exactly as sent (path and query). */
  target: string;
  /** Header lines in order (name, value as raw bytes); repeated names are sent repeatedly. */
  headers: Array<[string, string | Buffer]>;
  body?: Buffer;
  /** Send a Content-Length matching `body` (default true when there is a body). */
  contentLength?: boolean;
  /** Close our sending side after the body (the server sees the end of the stream). */
  halfClose?: boolean;
  /** HTTP version on the request line (default 1.1). */
  version?: string;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** The connection was reset or closed before a complete status line arrived. */
  noResponse: boolean;
}

export function encodeRequest(r: RawRequest, host: string): Buffer {
  const lines: Buffer[] = [
    Buffer.from(`${r.method} `, 'latin1'),
    Buffer.from(r.target, 'latin1'),
    Buffer.from(` HTTP/${r.version ?? '1.1'}\r\n`, 'latin1'),
  ];
  const names = new Set(r.headers.map(([n]) => n.toLowerCase()));
  if (!names.has('host')) lines.push(Buffer.from(`Host: ${host}\r\n`, 'latin1'));
  if (!names.has('connection')) lines.push(Buffer.from('Connection: close\r\n', 'latin1'));
  if (r.body && (r.contentLength ?? true) && !names.has('content-length') && !names.has('transfer-encoding')) {
    lines.push(Buffer.from(`Content-Length: ${r.body.length}\r\n`, 'latin1'));
  }
  for (const [n, v] of r.headers)
    lines.push(Buffer.from(`${n}: `, 'latin1'), typeof v === 'string' ? Buffer.from(v, 'latin1') : v, Buffer.from('\r\n', 'latin1'));
  lines.push(Buffer.from('\r\n', 'latin1'));
  if (r.body) lines.push(r.body);
  return Buffer.concat(lines);
}

function parseResponse(raw: Buffer): RawResponse | null {
  let rest = raw;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const head = rest.subarray(0, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '');
    if (!m) return null;
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) {
        const k = line.slice(0, i).trim().toLowerCase();
        headers[k] = headers[k] === undefined ? line.slice(i + 1).trim() : `${headers[k]}, ${line.slice(i + 1).trim()}`;
      }
    }
    rest = rest.subarray(end + 4);
    if (status === 100) continue; // an interim answer to Expect: 100-continue
    let body = rest;
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts: Buffer[] = [];
      let at = 0;
      for (;;) {
        const nl = rest.indexOf('\r\n', at);
        if (nl < 0) break;
        const size = parseInt(rest.subarray(at, nl).toString('latin1'), 16);
        if (!Number.isFinite(size) || size === 0) break;
        parts.push(rest.subarray(nl + 2, nl + 2 + size));
        at = nl + 2 + size + 2;
      }
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      body = rest.subarray(0, Number(headers['content-length']));
    }
    return { status, headers, body, noResponse: false };
  }
}

/**
 * Sends one request on a fresh connection (`Connection: close` unless the request names another) and reads until
 * the server closes it. A connection that ends without a status line gives `noResponse`. `hangMs` only turns a
 * server that never answers into a failing assertion instead of a test timeout; it is no speed limit.
 */
export function sendRaw(base: string, r: RawRequest, hangMs = 20_000): Promise<RawResponse> {
  const url = new URL(base);
  const bytes = encodeRequest(r, url.host);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = net.connect({ host: url.hostname, port: Number(url.port) });
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const raw = Buffer.concat(chunks);
      resolve(parseResponse(raw) ?? { status: 0, headers: {}, body: raw, noResponse: true });
    };
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      sock.destroy();
      reject(new Error(`no answer within ${hangMs} ms (server hung?) to ${r.method} ${r.target.slice(0, 200)}`));
    }, hangMs);
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('end', finish);
    sock.on('close', finish);
    sock.on('error', () => {
      /* EPIPE/ECONNRESET after the server answered and closed: what arrived is the answer */
    });
    sock.on('connect', () => {
      // Large bodies in slices, so that a server that answers early (413) is read, not reset mid-write.
      for (let i = 0; i < bytes.length; i += 65_536) sock.write(bytes.subarray(i, i + 65_536));
      if (r.halfClose) sock.end();
    });
  });
}
