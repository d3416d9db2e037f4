import { isIP } from 'node:net';

/**
 * The server's configuration, read once from the environment. Every default and every rule here is
 * fixed by HTTP-API.md; `loadConfig` throws {@link ConfigError} with one line that says what is wrong.
 */

/** Where the data lives. */
export type RedisTarget =
  | { readonly kind: 'fake' }
  | { readonly kind: 'url'; readonly url: string }
  | { readonly kind: 'cluster'; readonly nodes: ReadonlyArray<{ host: string; port: number }> }
  | {
      readonly kind: 'sentinel';
      readonly sentinels: ReadonlyArray<{ host: string; port: number }>;
      readonly name: string;
    };

/** Lifetimes and limits (seconds and counts, as the environment spells them). */
export interface Limits {
  readonly accessTokenTtlSeconds: number;
  readonly sessionIdleTtlSeconds: number;
  readonly sessionAbsoluteTtlSeconds: number;
  readonly refreshReuseGraceSeconds: number;
  readonly loginMaxFailures: number;
  readonly loginMaxFailuresPerIp: number;
  readonly registerMaxPerIp: number;
  readonly resetMaxPerIp: number;
  readonly passkeyLoginMaxPerIp: number;
  /** How long after a login (password, second factor or passkey) sensitive routes count it as fresh. */
  readonly freshAuthSeconds: number;
}

export interface Config {
  readonly host: string;
  readonly port: number;
  /** Development mode: dev outbox, generated keys, non-`Secure` cookies named `sid`. */
  readonly dev: boolean;
  readonly redis: RedisTarget;
  /**
   * `REDIS_WAIT_REPLICAS` (and `REDIS_WAIT_TIMEOUT_MS`): every revocation waits until that many replicas
   * acknowledged it, else 503 (latchkey's `durability` option); undefined = off.
   */
  readonly durability: { readonly replicas: number; readonly timeoutMs: number } | undefined;
  /** Trusted proxy hops in front of the server (`X-Forwarded-For` / `-Proto`); 0 = none. */
  readonly trustProxy: number;
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
  /** `PASETO_SECRET_KEY` (a PASERK `k4.secret.…`); undefined in development → generated. */
  readonly pasetoSecretKey: string | undefined;
  /** `LATCHKEY_SECRET` (base64url, ≥ 32 bytes); undefined in development → generated. */
  readonly latchkeySecret: string | undefined;
  /** `PUBLIC_ORIGIN`: the origin browsers use to reach the server (else the `Host` header counts). */
  readonly publicOrigin: string | undefined;
  /** `CSRF_TRUSTED_ORIGINS`: origins that always pass the cross-site check. */
  readonly csrfTrustedOrigins: readonly string[];
  readonly cookieName: 'sid' | '__Host-sid';
  readonly secureCookies: boolean;
  readonly limits: Limits;
  readonly logLevel: string;
  /**
   * Where `GET /metrics` (Prometheus text) is served: `METRICS_PORT` → only on a listener of its own on
   * that port (same `HOST`); else `METRICS_TOKEN` → on the app's port behind `Authorization: Bearer`;
   * else on the app's port in development mode only. With `METRICS_TOKEN`, every `/metrics` needs it.
   */
  readonly metrics: {
    readonly port: number | undefined;
    readonly token: string | undefined;
    /** Whether the app's own port answers `/metrics` (else 404 there). */
    readonly onAppPort: boolean;
  };
}

/** A configuration the server refuses to start with. The message is the one line it prints. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export const DEFAULT_LIMITS: Limits = Object.freeze({
  accessTokenTtlSeconds: 15 * 60,
  sessionIdleTtlSeconds: 60 * 60,
  sessionAbsoluteTtlSeconds: 24 * 60 * 60,
  refreshReuseGraceSeconds: 0,
  loginMaxFailures: 5,
  loginMaxFailuresPerIp: 10,
  registerMaxPerIp: 10,
  resetMaxPerIp: 10,
  passkeyLoginMaxPerIp: 30,
  freshAuthSeconds: 10 * 60,
});

const YEAR_SECONDS = 366 * 24 * 3600;
/** The most events per window the login limiter's `rateLimit` accepts (core's cap). */
const RATE_LIMIT_MAX = 100_000;
/**
 * Reset confirmations one IP may send per hour, per reset request it may send: each request yields one
 * code of 5 attempts. Without it, one address could spend the guesses of codes requested from many.
 */
export const RESET_CONFIRMS_PER_REQUEST = 5;

/** Each limit's variable and bounds (the bounds of the latchkey options they feed). */
const LIMIT_ENV: ReadonlyArray<readonly [keyof Limits, string, number, number]> = [
  ['accessTokenTtlSeconds', 'ACCESS_TOKEN_TTL_SECONDS', 1, 24 * 3600],
  ['sessionIdleTtlSeconds', 'SESSION_IDLE_TTL_SECONDS', 1, YEAR_SECONDS],
  ['sessionAbsoluteTtlSeconds', 'SESSION_ABSOLUTE_TTL_SECONDS', 1, YEAR_SECONDS],
  ['refreshReuseGraceSeconds', 'REFRESH_REUSE_GRACE_SECONDS', 0, 300],
  ['loginMaxFailures', 'LOGIN_MAX_FAILURES', 1, 100_000],
  ['loginMaxFailuresPerIp', 'LOGIN_MAX_FAILURES_PER_IP', 1, 100_000],
  ['registerMaxPerIp', 'REGISTER_MAX_PER_IP', 1, 100_000],
  // The confirm route's limit is RESET_CONFIRMS_PER_REQUEST times this one and must fit the limiter.
  ['resetMaxPerIp', 'RESET_MAX_PER_IP', 1, Math.floor(RATE_LIMIT_MAX / RESET_CONFIRMS_PER_REQUEST)],
  ['passkeyLoginMaxPerIp', 'PASSKEY_LOGIN_MAX_PER_IP', 1, 100_000],
  ['freshAuthSeconds', 'FRESH_AUTH_SECONDS', 1, 24 * 3600],
];

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** True for `localhost` and every loopback address (127.0.0.0/8, `::1`, IPv4-mapped loopback). */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^(0{0,4}:){0,5}:?ffff:127\./.test(h) || h === '0:0:0:0:0:0:0:1';
  return false;
}

/**
 * Reads the configuration from `env`.
 * @throws {ConfigError} naming what is missing or malformed, in one line.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const get = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };

  const host = get('HOST') ?? '127.0.0.1';
  const port = integer('PORT', get('PORT'), 3000, 0, 65535);

  const nodeEnv = get('NODE_ENV')?.toLowerCase();
  const production = nodeEnv === 'production' || nodeEnv === 'prod';
  const devFlag = get('LATCHKEY_DEV');
  if (devFlag !== undefined && devFlag !== '0' && devFlag !== '1') {
    throw new ConfigError(`LATCHKEY_DEV must be 0 or 1, got "${devFlag}"`);
  }
  // LATCHKEY_DEV=1 stands in for the automatic rule, never for NODE_ENV: production never serves the
  // dev outbox (which shows every code to whoever asks) or generated keys.
  if (production && devFlag === '1') {
    throw new ConfigError(`LATCHKEY_DEV=1 is not allowed with NODE_ENV=${get('NODE_ENV')}`);
  }

  const trustProxy = integer('TRUST_PROXY', get('TRUST_PROXY'), 0, 0, 100);
  const certFile = get('TLS_CERT_FILE');
  const keyFile = get('TLS_KEY_FILE');
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError('TLS_CERT_FILE and TLS_KEY_FILE must be set together');
  }
  const tls = certFile !== undefined && keyFile !== undefined ? { certFile, keyFile } : undefined;
  // Automatic development mode only when every client is local: a loopback HOST with a proxy in front
  // (TRUST_PROXY) or TLS serves remote clients, and the dev outbox would hand them every reset code.
  const automatic = isLoopbackHost(host) && trustProxy === 0 && tls === undefined;
  const dev = !production && (devFlag === '1' || automatic);

  const pasetoSecretKey = get('PASETO_SECRET_KEY');
  if (pasetoSecretKey !== undefined && !pasetoSecretKey.startsWith('k4.secret.')) {
    throw new ConfigError('PASETO_SECRET_KEY must be a PASERK k4.secret.… key');
  }
  const latchkeySecret = get('LATCHKEY_SECRET');
  if (latchkeySecret !== undefined) {
    const bytes = /^[A-Za-z0-9_-]+={0,2}$/.test(latchkeySecret)
      ? Buffer.from(latchkeySecret, 'base64url').length
      : 0;
    if (bytes < 32) throw new ConfigError('LATCHKEY_SECRET must be at least 32 random bytes in base64url');
  }

  if (!dev) {
    const missing: string[] = [];
    if (pasetoSecretKey === undefined) missing.push('PASETO_SECRET_KEY (a PASERK k4.secret.… key)');
    if (latchkeySecret === undefined) missing.push('LATCHKEY_SECRET (≥ 32 random bytes, base64url)');
    if (trustProxy === 0 && tls === undefined) {
      missing.push('TRUST_PROXY=<number of proxies> or TLS_CERT_FILE and TLS_KEY_FILE');
    }
    if (missing.length > 0) {
      throw new ConfigError(
        `refusing to start outside development mode (${productionReason(production, host, trustProxy, tls !== undefined)}) without ${missing.join(', ')}`,
      );
    }
  }

  const redisUrl = get('REDIS_URL');
  const redisCluster = get('REDIS_CLUSTER');
  const redisSentinels = get('REDIS_SENTINELS');
  if ([redisUrl, redisCluster, redisSentinels].filter((v) => v !== undefined).length > 1) {
    throw new ConfigError('set one of REDIS_URL, REDIS_CLUSTER or REDIS_SENTINELS, not several');
  }
  let redis: RedisTarget = { kind: 'fake' };
  if (redisUrl !== undefined) {
    if (!/^rediss?:\/\//.test(redisUrl))
      throw new ConfigError('REDIS_URL must start with redis:// or rediss://');
    redis = { kind: 'url', url: redisUrl };
  } else if (redisCluster !== undefined) {
    redis = { kind: 'cluster', nodes: hostPorts('REDIS_CLUSTER', redisCluster) };
  } else if (redisSentinels !== undefined) {
    const name = get('REDIS_SENTINEL_NAME');
    if (name === undefined || !/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
      throw new ConfigError(
        'REDIS_SENTINELS needs REDIS_SENTINEL_NAME (the master name: letters, digits, _ . -)',
      );
    }
    redis = { kind: 'sentinel', sentinels: hostPorts('REDIS_SENTINELS', redisSentinels), name };
  }
  const waitReplicas = get('REDIS_WAIT_REPLICAS');
  const waitTimeout = get('REDIS_WAIT_TIMEOUT_MS');
  let durability: Config['durability'];
  if (waitReplicas !== undefined && waitReplicas !== '0') {
    const replicas = Number(waitReplicas);
    const timeoutMs = Number(waitTimeout ?? '250');
    if (!Number.isSafeInteger(replicas) || replicas < 1 || replicas > 100) {
      throw new ConfigError('REDIS_WAIT_REPLICAS must be a whole number from 0 to 100');
    }
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 900) {
      throw new ConfigError(
        'REDIS_WAIT_TIMEOUT_MS must be a whole number from 1 to 900 (503s stay within 2 s)',
      );
    }
    durability = { replicas, timeoutMs };
  }

  const publicOriginText = get('PUBLIC_ORIGIN');
  const publicOrigin = publicOriginText === undefined ? undefined : origin('PUBLIC_ORIGIN', publicOriginText);
  const csrfTrustedOrigins = (get('CSRF_TRUSTED_ORIGINS') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => origin('CSRF_TRUSTED_ORIGINS', s));

  const limits = { ...DEFAULT_LIMITS };
  for (const [field, name, min, max] of LIMIT_ENV) {
    limits[field] = integer(name, get(name), DEFAULT_LIMITS[field], min, max);
  }
  // Checked again on the derived value, so a change of either constant cannot crash a later start.
  if (limits.resetMaxPerIp * RESET_CONFIRMS_PER_REQUEST > RATE_LIMIT_MAX) {
    throw new ConfigError(
      `RESET_MAX_PER_IP must be at most ${Math.floor(RATE_LIMIT_MAX / RESET_CONFIRMS_PER_REQUEST)} (reset confirmations are limited to ${RESET_CONFIRMS_PER_REQUEST} times it, at most ${RATE_LIMIT_MAX} per hour)`,
    );
  }
  if (limits.sessionIdleTtlSeconds > limits.sessionAbsoluteTtlSeconds) {
    throw new ConfigError('SESSION_IDLE_TTL_SECONDS must not exceed SESSION_ABSOLUTE_TTL_SECONDS');
  }

  const metricsPortText = get('METRICS_PORT');
  const metricsPort =
    metricsPortText === undefined ? undefined : integer('METRICS_PORT', metricsPortText, 0, 0, 65535);
  const metricsToken = get('METRICS_TOKEN');
  if (metricsToken !== undefined && !/^[\x21-\x7e]{32,256}$/.test(metricsToken)) {
    throw new ConfigError('METRICS_TOKEN must be 32 to 256 printable characters without spaces');
  }
  if (metricsPort !== undefined && metricsPort !== 0 && metricsPort === port) {
    throw new ConfigError('METRICS_PORT must differ from PORT');
  }

  const logLevel = get('LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.has(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${[...LOG_LEVELS].join(', ')}`);
  }

  return Object.freeze({
    host,
    port,
    dev,
    redis,
    durability,
    trustProxy,
    tls,
    pasetoSecretKey,
    latchkeySecret,
    publicOrigin,
    csrfTrustedOrigins: Object.freeze(csrfTrustedOrigins),
    cookieName: dev ? 'sid' : '__Host-sid',
    secureCookies: !dev,
    limits: Object.freeze(limits),
    logLevel,
    metrics: Object.freeze({
      port: metricsPort,
      token: metricsToken,
      onAppPort: metricsPort === undefined && (metricsToken !== undefined || dev),
    }),
  });
}

/** Why the rules of development mode did not apply, for the refusal line. */
function productionReason(production: boolean, host: string, trustProxy: number, tls: boolean): string {
  if (production) return 'NODE_ENV is production';
  if (!isLoopbackHost(host)) return `HOST ${host} is not loopback`;
  if (trustProxy > 0) return 'TRUST_PROXY is set: clients come through a proxy';
  if (tls) return 'TLS is configured';
  return 'development mode is off';
}

/**
 * True when a request's `Host` header names the loopback interface as development mode serves it:
 * `localhost`, `127.0.0.1` or `[::1]`, with or without a port. Anything else in development mode is a
 * DNS-rebinding attempt (a foreign name resolving to 127.0.0.1) and is answered 421.
 */
export function isLoopbackHostHeader(header: string | undefined): boolean {
  if (header === undefined) return false;
  const match = /^(localhost|127\.0\.0\.1|\[::1\])(?::\d{1,5})?$/i.exec(header.trim());
  return match !== null;
}

function integer(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  if (!/^\d{1,12}$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got "${text}"`);
  }
  return Number(text);
}

/** `scheme://host[:port]` with nothing else (an origin as browsers send it), normalized. */
function origin(name: string, text: string): string {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  const bare =
    url !== undefined &&
    url.origin !== 'null' &&
    url.username === '' &&
    url.password === '' &&
    url.pathname === '/' &&
    url.search === '' &&
    url.hash === '';
  if (url === undefined || !bare) {
    throw new ConfigError(`${name} must hold origins like https://example.com, got "${text}"`);
  }
  return url.origin;
}

/** `host:port,host:port,…` (IPv6 in brackets). */
function hostPorts(name: string, text: string): Array<{ host: string; port: number }> {
  return text.split(',').map((entry) => {
    const match = /^\s*(\[[^\]]+\]|[^:\s]+):(\d{1,5})\s*$/.exec(entry);
    const portText = match?.[2];
    if (match?.[1] === undefined || portText === undefined || Number(portText) > 65535) {
      throw new ConfigError(`${name} must be host:port,… (got "${entry.trim()}")`);
    }
    return { host: match[1].replace(/^\[(.*)\]$/, '$1'), port: Number(portText) };
  });
}
