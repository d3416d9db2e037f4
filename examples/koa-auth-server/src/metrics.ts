import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { CommandTiming, SecurityEvent } from '@latchkey/core';
import type { Middleware } from 'koa';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { AvailabilityChange, RedisAvailability } from './outage.js';

/** Latency buckets of HTTP requests, in seconds (argon2id logins take ~50–300 ms). */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Latency buckets of Redis round trips, in seconds (loopback ~0.1 ms, the command timeout 1 s). */
const REDIS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2];
/** Outage lengths, in seconds. */
const OUTAGE_BUCKETS = [0.5, 1, 2, 5, 10, 30, 60, 300, 900];

/**
 * The example's Prometheus metrics, on a registry of its own (prom-client). Fed by latchkey's two
 * hooks — `onEvent` (security events) and `onCommand` (Redis round trips) — by the app's HTTP
 * middleware and by {@link RedisAvailability}'s `'change'` events. Every label has a small, fixed set
 * of values: event types, route patterns (never raw paths), script names, status codes.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #events: Counter<'type'>;
  readonly #requests: Counter<'method' | 'route' | 'status'>;
  readonly #requestSeconds: Histogram<'method' | 'route'>;
  readonly #redisSeconds: Histogram<'operation' | 'outcome'>;
  readonly #redisErrors: Counter<'operation' | 'outcome'>;
  readonly #redisUp: Gauge;
  #availability: RedisAvailability | undefined;
  readonly #outages: Counter;
  readonly #outageSeconds: Histogram;

  constructor() {
    const registers = [this.registry];
    this.#events = new Counter({
      name: 'latchkey_security_events_total',
      help: 'Security events of the latchkey stores and the app, by type (login.failed, login.blocked, refresh.reuse-detected, …)',
      labelNames: ['type'],
      registers,
    });
    this.#requests = new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests answered, by method, route pattern and status',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.#requestSeconds = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Time from the request to the end of the response, by method and route pattern',
      labelNames: ['method', 'route'],
      buckets: HTTP_BUCKETS,
      registers,
    });
    this.#redisSeconds = new Histogram({
      name: 'latchkey_redis_command_duration_seconds',
      help: 'Redis round trips of the latchkey stores, by operation (script) and outcome (ok, unavailable, failed)',
      labelNames: ['operation', 'outcome'],
      buckets: REDIS_BUCKETS,
      registers,
    });
    this.#redisErrors = new Counter({
      name: 'latchkey_redis_command_errors_total',
      help: 'Redis round trips of the latchkey stores that failed, by operation and outcome (unavailable, failed)',
      labelNames: ['operation', 'outcome'],
      registers,
    });
    // Set by each scrape (#exposition), not kept from the last request.
    this.#redisUp = new Gauge({
      name: 'latchkey_redis_up',
      help: 'Whether Redis serves the app (1) or the app answers 503 because it does not (0): a PING at each scrape (at most 1 s) outside an outage; 0 without a view of Redis',
      registers,
    });
    this.#outages = new Counter({
      name: 'latchkey_redis_outages_total',
      help: 'Times Redis became unavailable to the app (transitions from up to down)',
      registers,
    });
    this.#outageSeconds = new Histogram({
      name: 'latchkey_redis_outage_duration_seconds',
      help: 'Length of each Redis outage the app saw, observed when Redis is back',
      buckets: OUTAGE_BUCKETS,
      registers,
    });
  }

  /** Also collects Node's process metrics (CPU, memory, event-loop lag, GC): the server does this. */
  collectProcessMetrics(): void {
    collectDefaultMetrics({ register: this.registry });
  }

  /** latchkey's `onEvent` hook (and the app's own password events). */
  readonly onEvent = (event: SecurityEvent): void => {
    this.#events.inc({ type: event.type });
  };

  /** latchkey's `onCommand` hook. */
  readonly onCommand = (timing: CommandTiming): void => {
    const labels = { operation: timing.operation, outcome: timing.outcome };
    this.#redisSeconds.observe(labels, timing.durationMs / 1000);
    if (timing.outcome !== 'ok') this.#redisErrors.inc(labels);
  };

  /**
   * Follows the app's view of Redis: `latchkey_redis_up` (checked at each scrape), outages and their
   * length.
   */
  watch(availability: RedisAvailability): void {
    this.#availability = availability;
    availability.on('change', (change: AvailabilityChange) => {
      if (change.up) this.#outageSeconds.observe(change.outageMs / 1000);
      else this.#outages.inc();
    });
  }

  /**
   * Counts and times every request once its response is finished (the status is final then, errors
   * included). The route label is the router's pattern (`/auth/sessions/:id`); a response no route
   * produced is labelled by its path only when it succeeded — only the fixed paths of the browser page
   * and `/metrics` do — else `unmatched`, so that no client can mint label values.
   */
  http(): Middleware {
    return async (ctx, next) => {
      const started = process.hrtime.bigint();
      ctx.res.once('close', () => {
        const matched = (ctx as { _matchedRoute?: unknown })._matchedRoute;
        const route = typeof matched === 'string' ? matched : ctx.status < 400 ? ctx.path : 'unmatched';
        const method = KNOWN_METHODS.has(ctx.method) ? ctx.method : 'OTHER';
        this.#requests.inc({ method, route, status: String(ctx.status) });
        this.#requestSeconds.observe({ method, route }, Number(process.hrtime.bigint() - started) / 1e9);
      });
      await next();
    };
  }

  /**
   * `GET /metrics` on the app's own port: Prometheus text. With `token`, only for
   * `Authorization: Bearer <token>` (else 401); other methods 405.
   */
  endpoint(token: string | undefined): Middleware {
    return async (ctx, next) => {
      if (ctx.path !== '/metrics') return next();
      const refusal = this.#refusal(ctx.method, ctx.get('authorization'), token);
      if (refusal !== null) {
        ctx.status = refusal.status;
        if (refusal.status === 401) ctx.set('WWW-Authenticate', 'Bearer realm="metrics"');
        if (refusal.status === 405) ctx.set('Allow', 'GET, HEAD');
        ctx.body = { error: refusal.error, message: refusal.message };
        return;
      }
      ctx.set('Cache-Control', 'no-store');
      ctx.type = this.registry.contentType;
      ctx.body = await this.#exposition();
    };
  }

  /**
   * The exposition text, `latchkey_redis_up` checked first. It is read at the scrape rather than kept
   * from the last request because an idle server has no request to learn from: "up until a command
   * fails" reads 1 on a server started (or left idle) while Redis is down, and "unknown until a
   * command succeeds" reads 0 on a healthy idle one. A scrape is when the value is read, and one PING
   * per scrape interval costs nothing; during an outage none is sent. Checked before the other
   * metrics are read, so that an outage the PING begins is counted in the same scrape.
   */
  async #exposition(): Promise<string> {
    this.#redisUp.set((await this.#availability?.check()) === true ? 1 : 0);
    return this.registry.metrics();
  }

  #refusal(
    method: string,
    authorization: string,
    token: string | undefined,
  ): { status: number; error: string; message: string } | null {
    if (method !== 'GET' && method !== 'HEAD') {
      return { status: 405, error: 'method_not_allowed', message: 'only GET and HEAD are allowed here' };
    }
    if (token !== undefined && !bearerMatches(authorization, token)) {
      return {
        status: 401,
        error: 'unauthenticated',
        message: 'the metrics need the METRICS_TOKEN bearer token',
      };
    }
    return null;
  }

  /**
   * A plain HTTP server of its own for `METRICS_PORT`: `GET /metrics` (with `token`, behind its bearer
   * token), 404 for anything else. The app's port then never serves `/metrics`.
   */
  listener(token: string | undefined): Server {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const send = (
        status: number,
        body: string,
        type: string,
        headers: Record<string, string> = {},
      ): void => {
        res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', ...headers });
        res.end(req.method === 'HEAD' ? undefined : body);
      };
      if (path !== '/metrics') {
        send(
          404,
          JSON.stringify({ error: 'not_found', message: 'only /metrics is served here' }),
          'application/json',
        );
        return;
      }
      const refusal = this.#refusal(req.method ?? 'GET', req.headers.authorization ?? '', token);
      if (refusal !== null) {
        const headers: Record<string, string> =
          refusal.status === 401 ? { 'WWW-Authenticate': 'Bearer realm="metrics"' } : { Allow: 'GET, HEAD' };
        send(
          refusal.status,
          JSON.stringify({ error: refusal.error, message: refusal.message }),
          'application/json',
          headers,
        );
        return;
      }
      this.#exposition().then(
        (text) => send(200, text, this.registry.contentType),
        () => send(500, '', 'text/plain'),
      );
    });
    // A malformed request never reaches the handler; answer it without a stack trace.
    server.on('clientError', (_error, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
    return server;
  }
}

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** `Bearer <token>` compared in constant time (by digest, so lengths do not leak either). */
function bearerMatches(header: string, token: string): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (match?.[1] === undefined) return false;
  const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(match[1]), digest(token));
}
