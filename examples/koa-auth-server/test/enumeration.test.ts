import { countRoundTrips, TestClock } from '@latchkey/testing';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type PasswordChecker, PasswordHasher } from '../src/passwords.js';
import { FAST_HASHING, type Reply, signUp, startTestApp, type TestApp } from './helpers.js';

// Login and password-reset requests must not tell whether an account exists: not by status or
// body, not by the work done (the same Redis commands in the same order, a password check against a
// dummy hash), not by time, not by when they start answering 429.

/** argon2id that records what each check was against. */
class RecordingHasher implements PasswordChecker {
  readonly #inner: PasswordHasher;
  readonly checks: Array<'stored' | 'dummy'> = [];

  constructor(inner = new PasswordHasher(FAST_HASHING)) {
    this.#inner = inner;
  }

  hash(password: string): Promise<string> {
    return this.#inner.hash(password);
  }

  verify(stored: string | undefined, password: string): Promise<boolean> {
    this.checks.push(stored === undefined ? 'dummy' : 'stored');
    return this.#inner.verify(stored, password);
  }

  warmUp(): Promise<void> {
    return this.#inner.warmUp();
  }
}

interface Ctx {
  app: TestApp;
  clock: TestClock;
  hasher: RecordingHasher;
}

const enumeration = suite<Ctx>('no user enumeration');
enumeration.before.each(async (ctx) => {
  ctx.clock = new TestClock();
  ctx.clock.install();
  ctx.hasher = new RecordingHasher();
  ctx.app = await startTestApp({ clock: ctx.clock, passwordHasher: ctx.hasher });
});
enumeration.after.each(async (ctx) => {
  await ctx.app.close();
  ctx.clock.restore();
});

const counters = new WeakMap<TestApp, ReturnType<typeof countRoundTrips>>();

/** The answer to `request` and the Redis commands it sent, in order. */
async function traced(
  app: TestApp,
  request: () => Promise<Reply>,
): Promise<{ reply: Reply; commands: string[] }> {
  // One counter per client: a second one would not see the commands the first one wraps.
  let counter = counters.get(app);
  if (counter === undefined) {
    counter = countRoundTrips(app.redis);
    counters.set(app, counter);
  }
  counter.reset();
  const reply = await request();
  return { reply, commands: [...counter.commands] };
}

function sameAnswer(a: Reply, b: Reply, what: string): void {
  assert.is(a.status, b.status, what);
  assert.equal(a.body, b.body, what);
  assert.equal(a.setCookies, b.setCookies, what);
  assert.is(a.headers.get('retry-after'), b.headers.get('retry-after'), what);
}

enumeration(
  'login: an unknown email and a wrong password get the same answer after the same commands and one full password check',
  async ({ app, hasher }) => {
    const user = await signUp(app.client());
    hasher.checks.length = 0;
    const wrong = await traced(app, () =>
      app.client().post('/auth/login', { email: user.email, password: 'not the password' }),
    );
    const unknown = await traced(app, () =>
      app.client().post('/auth/login', { email: 'nobody@example.com', password: 'not the password' }),
    );
    sameAnswer(wrong.reply, unknown.reply, 'answer');
    assert.is(wrong.reply.status, 401);
    assert.equal(unknown.commands, wrong.commands, 'the same Redis commands, in the same order');
    assert.equal(hasher.checks, ['stored', 'dummy'], 'the unknown email was checked against the dummy hash');
  },
);

enumeration(
  'password-reset request: known, unknown, inside the cooldown and over the cap — one answer, the same commands',
  async ({ app, clock }) => {
    const user = await signUp(app.client());
    // One address: the issue caps count per email, purpose and client IP bucket.
    const client = app.client();
    const request = (email: string) => () => client.post('/auth/password-reset/request', { email });
    const known = await traced(app, request(user.email));
    const unknown = await traced(app, request('nobody@example.com'));
    const cooldown = await traced(app, request(user.email));
    for (let i = 0; i < 4; i++) {
      clock.advance(61_000);
      await request(user.email)();
    }
    clock.advance(61_000);
    const capped = await traced(app, request(user.email));
    assert.is(
      app.outbox?.list(user.email).length,
      5,
      'five codes went out; the cooldown and the cap sent none',
    );
    for (const [name, other] of [
      ['unknown', unknown],
      ['cooldown', cooldown],
      ['capped', capped],
    ] as const) {
      sameAnswer(known.reply, other.reply, name);
      assert.equal(other.commands, known.commands, name);
    }
    assert.is(known.reply.status, 202);
  },
);

enumeration('login: unknown emails meet the per-account limit exactly like known ones', async ({ app }) => {
  const user = await signUp(app.client());
  const client = app.client();
  const answers = async (email: string): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < 6; i++)
      out.push((await client.post('/auth/login', { email, password: 'nope nope' })).status);
    return out;
  };
  const known = await answers(user.email);
  const unknown = await answers('ghost@example.com');
  assert.equal(known, [401, 401, 401, 401, 401, 429]);
  assert.equal(unknown, known);
});

enumeration.run();

// --- time -----------------------------------------------------------------------------------------

const timing = suite('no user enumeration: time');

timing(
  'with a real argon2id cost, a login for an unknown email takes about as long as a wrong password',
  async () => {
    // About 30 ms a check: several times the rest of a request even on a loaded machine (so that
    // skipping it shows), small enough to repeat.
    const hasher = new PasswordHasher({ memoryCost: 32768, timeCost: 3 });
    const app = await startTestApp({
      passwordHasher: hasher,
      env: { LOGIN_MAX_FAILURES: '1000', LOGIN_MAX_FAILURES_PER_IP: '1000' },
    });
    try {
      const user = await signUp(app.client());
      await hasher.warmUp();
      const client = app.client();
      const time = async (email: string): Promise<number> => {
        const started = performance.now();
        const reply = await client.post('/auth/login', { email, password: 'not the password' });
        assert.is(reply.status, 401);
        return performance.now() - started;
      };
      // Interleaved, compared by median: load from elsewhere on the machine hits both alike.
      const wrong: number[] = [];
      const unknown: number[] = [];
      for (let i = 0; i < 11; i++) {
        wrong.push(await time(user.email));
        unknown.push(await time(`nobody${i}@example.com`));
      }
      const median = (values: number[]): number =>
        values.sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
      const ratio = median(unknown) / median(wrong);
      // Measured: 0.8 to 1.05 here under load; without the dummy check about 0.1.
      assert.ok(ratio > 0.5 && ratio < 2, `unknown / wrong = ${ratio.toFixed(2)}`);
    } finally {
      await app.close();
    }
  },
);

timing.run();
