import { randomInt } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { Clock, RedisClient } from '@latchkey/core';
import { createFakeRedis, TestClock } from '@latchkey/testing';
import type { Middleware } from 'koa';
import { suite, type Test } from 'uvu';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import type { DevOutbox } from '../src/mailer.js';
import type { PasswordChecker } from '../src/passwords.js';
import { assemble } from '../src/setup.js';

/** Fast argon2id for tests (production keeps the OWASP defaults). */
export const FAST_HASHING = Object.freeze({ memoryCost: 64, timeCost: 1, parallelism: 1 });

/** Limits high enough that a test only meets the one it is about. */
export const RELAXED_ENV: Readonly<Record<string, string>> = Object.freeze({
  LOGIN_MAX_FAILURES_PER_IP: '1000',
  REGISTER_MAX_PER_IP: '1000',
  RESET_MAX_PER_IP: '1000',
  PASSKEY_LOGIN_MAX_PER_IP: '1000',
});

export interface TestAppOptions {
  /** Environment on top of `HOST=127.0.0.1 TRUST_PROXY=1 LATCHKEY_DEV=1` (development mode: a proxy in front turns the automatic rule off) and {@link RELAXED_ENV}. */
  readonly env?: Record<string, string>;
  /** Without it, a fresh fake Redis (closed with the app). */
  readonly redis?: RedisClient;
  readonly clock?: Clock;
  readonly prefix?: string;
  /** Replaces the argon2id hasher (e.g. with one whose checks can be paused). */
  readonly passwordHasher?: PasswordChecker;
  /** Appended after the app's own middleware: it sees the requests no route answered. */
  readonly probe?: Middleware;
}

export interface TestApp {
  readonly url: string;
  readonly host: string;
  readonly redis: RedisClient;
  readonly outbox: DevOutbox | undefined;
  /** Every log line written so far (JSON text). */
  readonly logs: string[];
  /** How many requests the server has received so far. */
  readonly received: () => number;
  /** A client with its own cookie jar and its own client IP (sent as X-Forwarded-For). */
  client(options?: { ip?: string }): Client;
  close(): Promise<void>;
}

/** Starts the app on 127.0.0.1:<free port> over a real socket. */
export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const env = {
    HOST: '127.0.0.1',
    TRUST_PROXY: '1',
    LATCHKEY_DEV: '1',
    LOG_LEVEL: 'info',
    ...RELAXED_ENV,
    ...options.env,
  };
  const config = loadConfig(env);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(
        ...chunk
          .toString('utf8')
          .split('\n')
          .filter((line) => line !== ''),
      );
      done();
    },
  });
  const ownRedis = options.redis === undefined;
  const redis = options.redis ?? createFakeRedis();
  const assembled = await assemble({
    config,
    redis,
    logger: createLogger(config.logLevel, sink),
    passwordHashing: FAST_HASHING,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    ...(options.passwordHasher === undefined ? {} : { passwordHasher: options.passwordHasher }),
  });
  if (options.probe !== undefined) assembled.app.use(options.probe);
  const callback = assembled.app.callback();
  let received = 0;
  const server: Server = createServer((req, res) => {
    received++;
    void callback(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const host = `127.0.0.1:${port}`;
  const url = `http://${host}`;
  return {
    url,
    host,
    redis,
    outbox: assembled.outbox,
    logs,
    received: () => received,
    client: (clientOptions = {}) => new Client(url, clientOptions.ip ?? randomIp()),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (ownRedis) redis.disconnect();
    },
  };
}

/** A random address in 10.0.0.0/8, so that per-IP limits of one test never meet another's. */
export function randomIp(): string {
  return `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
}

export interface RequestOptions {
  /** Sent as JSON (`Content-Type: application/json`). */
  readonly json?: unknown;
  /** Sent as `application/x-www-form-urlencoded`. */
  readonly form?: Record<string, string>;
  /** Sent as is (with `headers` deciding the type). */
  readonly body?: string | Buffer;
  readonly headers?: Record<string, string>;
  /** Send the jar's cookies. @default true */
  readonly cookies?: boolean;
  /** `Authorization: Bearer <token>`. */
  readonly bearer?: string;
}

export interface Reply {
  readonly status: number;
  readonly headers: Headers;
  /** The parsed JSON body, or undefined. */
  // biome-ignore lint/suspicious/noExplicitAny: tests read response bodies freely
  readonly body: any;
  readonly text: string;
  /** The `Set-Cookie` lines of this response. */
  readonly setCookies: string[];
}

/** A tiny HTTP client with a cookie jar, like a browser without the page. */
export class Client {
  readonly url: string;
  readonly ip: string;
  readonly jar = new Map<string, string>();

  constructor(url: string, ip: string) {
    this.url = url;
    this.ip = ip;
  }

  async request(method: string, path: string, options: RequestOptions = {}): Promise<Reply> {
    const headers: Record<string, string> = { 'x-forwarded-for': this.ip, ...options.headers };
    let body: string | Buffer | undefined = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] ??= 'application/json';
    } else if (options.form !== undefined) {
      body = new URLSearchParams(options.form).toString();
      headers['content-type'] ??= 'application/x-www-form-urlencoded';
    }
    if (options.bearer !== undefined) headers['authorization'] = `Bearer ${options.bearer}`;
    if (options.cookies !== false && this.jar.size > 0 && headers['cookie'] === undefined) {
      headers['cookie'] = [...this.jar].map(([name, value]) => `${name}=${value}`).join('; ');
    }
    const response = await fetch(this.url + path, {
      method,
      headers,
      ...(body === undefined ? {} : { body }),
      redirect: 'manual',
    });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const setCookies = response.headers.getSetCookie();
    for (const line of setCookies) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (/max-age=0/i.test(line) || value === '') this.jar.delete(name);
      else this.jar.set(name, value);
    }
    return { status: response.status, headers: response.headers, body: parsed, text, setCookies };
  }

  get(path: string, options?: RequestOptions): Promise<Reply> {
    return this.request('GET', path, options);
  }

  post(path: string, json?: unknown, options: RequestOptions = {}): Promise<Reply> {
    return this.request('POST', path, json === undefined ? options : { ...options, json });
  }

  delete(path: string, options?: RequestOptions): Promise<Reply> {
    return this.request('DELETE', path, options);
  }
}

/** Registers and logs in a fresh user; returns the tokens (the client now holds the cookie). */
export async function signUp(
  client: Client,
  email = `user-${randomInt(1e9)}@example.com`,
  password = 'correct horse battery',
): Promise<{ email: string; password: string; userId: string; accessToken: string; refreshToken: string }> {
  const registered = await client.post('/auth/register', { email, password });
  if (registered.status !== 201) throw new Error(`register: ${registered.status} ${registered.text}`);
  const login = await client.post('/auth/login', { email, password });
  if (login.status !== 200) throw new Error(`login: ${login.status} ${login.text}`);
  return {
    email,
    password,
    userId: registered.body.userId,
    accessToken: login.body.accessToken,
    refreshToken: login.body.refreshToken,
  };
}

/** The newest code the outbox holds for `to` and `purpose`. */
export function lastCode(app: TestApp, to: string, purpose: string): string {
  const messages = app.outbox?.list(to).filter((m) => m.purpose === purpose) ?? [];
  const last = messages[messages.length - 1];
  if (last === undefined) throw new Error(`no ${purpose} message for ${to}`);
  return last.code;
}

/** Resolves once `check` is true, polling every 20 ms; fails after `timeoutMs`. */
export async function eventually(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Replaces one of latchkey's scripts on `redis` (by its name, e.g. `refresh-issue`) with `fn` until the
 * returned function is called: fault injection for what a real outage or race does between two
 * calls of one request. The script must have been used once (latchkey defines it on first use).
 */
export function replaceScript(
  redis: RedisClient,
  name: string,
  fn: (...args: unknown[]) => Promise<unknown>,
): () => void {
  const client = redis as unknown as Record<string, unknown>;
  const prefix = `latchkey_${name.replace(/[^A-Za-z0-9]/g, '_')}_`;
  const command = Object.keys(client).find((key) => key.startsWith(prefix));
  if (command === undefined) throw new Error(`the script ${name} is not defined on this client yet`);
  const original = client[command];
  client[command] = fn;
  return () => {
    client[command] = original;
  };
}

/** What each test of a {@link routeSuite} receives: a fresh app on the fake Redis and its clock. */
export interface RouteContext {
  app: TestApp;
  clock: TestClock;
}

/**
 * A uvu suite whose every test gets a fresh app (with `env` on top of the relaxed defaults) on the
 * embedded fake Redis, driven by an installed {@link TestClock} so the fake expires keys by it.
 */
export function routeSuite(title: string, env: Record<string, string> = {}): Test<RouteContext> {
  const test = suite<RouteContext>(title);
  test.before.each(async (ctx) => {
    ctx.clock = new TestClock();
    ctx.clock.install();
    ctx.app = await startTestApp({ env, clock: ctx.clock });
  });
  test.after.each(async (ctx) => {
    await ctx.app.close();
    ctx.clock.restore();
  });
  return test;
}
