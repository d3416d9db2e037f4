// The HTTP scenarios: one server process each (bench/scenarios/<file>.ts), grouped by the work they do.

export type Group = 'reference' | 'session' | 'bearer' | 'limiter';

export interface Target {
  /** Ratio to the baseline of the same round, at least. */
  readonly minRatio?: number;
  /** At least as fast as this scenario (median ratio). */
  readonly atLeast?: string;
  /** Ahead of these peers doing the same work (median ratio). */
  readonly ahead?: readonly string[];
  /** At least `fraction` of this floor scenario's ratio (e.g. within 10 % of the crypto floor). */
  readonly near?: { readonly id: string; readonly fraction: number };
  /** Both server and Redis CPU µs per request below this peer's (medians). */
  readonly cpuBelow?: string;
  readonly text: string;
}

export interface ScenarioDef {
  readonly id: string;
  readonly label: string;
  readonly group: Group;
  readonly file: string;
  readonly mode?: string;
  readonly latchkey?: boolean;
  readonly work: string;
  readonly target?: Target;
}

const SESSION_PEERS = ['koa-session', 'koa-session-rolling', 'express-session'];

export const SCENARIOS: readonly ScenarioDef[] = [
  {
    id: 'baseline',
    label: 'Koa + one raw GET (baseline)',
    group: 'reference',
    file: 'baseline',
    work: 'ioredis GET of one key',
  },
  { id: 'bare-koa', label: 'bare Koa', group: 'reference', file: 'bare-koa', work: 'no Redis' },
  {
    id: 'latchkey-session',
    label: 'latchkey session (sliding)',
    group: 'session',
    file: 'latchkey-session',
    latchkey: true,
    work: '@latchkey/koa session middleware: cookie → SessionStore.get, idle timeout renewed',
    target: { minRatio: 0.9, ahead: SESSION_PEERS, text: '≥ 0.90× and ahead of every session peer' },
  },
  {
    id: 'koa-session',
    label: 'koa-session + koa-redis',
    group: 'session',
    file: 'koa-session',
    mode: 'plain',
    work: 'signed cookie → GET (no server-side renewal)',
  },
  {
    id: 'koa-session-rolling',
    label: 'koa-session + koa-redis, rolling',
    group: 'session',
    file: 'koa-session',
    mode: 'rolling',
    work: 'signed cookie → GET, then SETEX of the whole session and a new cookie',
  },
  {
    id: 'express-session',
    label: 'express-session + connect-redis',
    group: 'session',
    file: 'express-session',
    work: 'Express 5, signed cookie → GET, then EXPIRE (touch) and a rolling cookie',
  },
  {
    id: 'latchkey-bearer-cache',
    label: 'latchkey bearer, cache on',
    group: 'bearer',
    file: 'latchkey-bearer',
    mode: 'cache',
    latchkey: true,
    work: '@latchkey/koa bearer: verified-token cache hit, then one script (jti, session, mark)',
    target: { minRatio: 0.9, ahead: ['paseto-exists'], text: '≥ 0.90× and ahead of raw paseto + EXISTS' },
  },
  {
    id: 'latchkey-bearer-nocache',
    label: 'latchkey bearer, cache off',
    group: 'bearer',
    file: 'latchkey-bearer',
    mode: 'nocache',
    latchkey: true,
    work: '@latchkey/koa bearer: v4.public verify, then one script (jti, session, mark)',
    target: {
      atLeast: 'paseto-exists',
      near: { id: 'ed25519-floor', fraction: 0.9 },
      text: '≥ raw paseto + EXISTS, within 10 % of the Ed25519 floor',
    },
  },
  {
    id: 'ed25519-floor',
    label: 'Ed25519 verify + one raw GET (the floor)',
    group: 'bearer',
    file: 'ed25519-floor',
    work: 'node:crypto Ed25519 verify of a v4.public token (PAE by hand, key prepared once), claims parsed, one GET',
  },
  {
    id: 'paseto-exists',
    label: 'paseto v4.public verify + EXISTS',
    group: 'bearer',
    file: 'paseto-exists',
    work: 'paseto v4.public verify, then EXISTS on a revoked-jti key',
  },
  {
    id: 'latchkey-limiter',
    label: 'latchkey limiter (account+IP and IP)',
    group: 'limiter',
    file: 'latchkey-limiter',
    latchkey: true,
    work: 'LoginLimiter check: both default policies reserved in one script',
    target: {
      minRatio: 0.95,
      ahead: ['rlf-two'],
      cpuBelow: 'rlf-two',
      text: '≥ 0.95×, ahead of rate-limiter-flexible with both policies, less server and Redis CPU',
    },
  },
  {
    id: 'rlf-one',
    label: 'rate-limiter-flexible, one key',
    group: 'limiter',
    file: 'rate-limiter-flexible',
    mode: 'one',
    work: 'RateLimiterRedis consume per IP (one script)',
  },
  {
    id: 'rlf-two',
    label: 'rate-limiter-flexible, account+IP and IP',
    group: 'limiter',
    file: 'rate-limiter-flexible',
    mode: 'two',
    work: 'two RateLimiterRedis consumes in parallel (two scripts, not atomic together)',
  },
];
