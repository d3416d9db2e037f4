import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Koa from 'koa';

/** A Koa app listening on 127.0.0.1 on a free port, for HTTP tests. */
export interface TestServer {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string;
  /** `127.0.0.1:<port>`, what the client sends as `Host`. */
  readonly host: string;
  /** `fetch` against the app; `path` starts with `/`. */
  request(path: string, init?: RequestInit): Promise<Response>;
  /** Closes the server and every connection to it. */
  close(): Promise<void>;
}

/** Serves `app.callback()` on 127.0.0.1, port 0. */
export async function serve<State, Context>(app: Koa<State, Context>): Promise<TestServer> {
  const server: Server = createServer(app.callback());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    host: `127.0.0.1:${port}`,
    request: (path, init) => fetch(origin + path, { redirect: 'manual', ...init }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The `name=value` part of every `Set-Cookie` of a response whose name is `name`, in order. */
export function setCookies(response: Response, name: string): string[] {
  return response.headers.getSetCookie().filter((cookie) => cookie.startsWith(`${name}=`));
}

/** The value a `Set-Cookie` line sets. */
export function cookieValue(setCookie: string): string {
  const pair = setCookie.split(';', 1)[0] as string;
  return pair.slice(pair.indexOf('=') + 1);
}

/** The attributes of a `Set-Cookie` line, names lower-cased (`httponly` → `''`). */
export function cookieAttributes(setCookie: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of setCookie.split(';').slice(1)) {
    const eq = part.indexOf('=');
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    out[name] = eq === -1 ? '' : part.slice(eq + 1).trim();
  }
  return out;
}
