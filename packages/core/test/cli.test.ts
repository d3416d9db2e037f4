import { freePort } from '@latchkey/testing';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { KeyRing, ServerSecret } from '../src/index.js';
import { runCli } from './helpers/cli.js';

/** No stack trace reaches the operator: no "    at …" frame lines, no "Error:" dumps. */
function assertNoStack(text: string): void {
  assert.not.match(text, /^\s+at /m, 'a stack trace was printed');
  assert.not.match(text, /node:internal|\.ts:\d+/, 'a source location was printed');
}

const args = suite('latchkey CLI: arguments');

args('no command prints the usage on stderr and exits 2', async () => {
  const run = await runCli([]);
  assert.is(run.code, 2);
  assert.is(run.stdout, '');
  assert.match(run.stderr, /Usage: latchkey <command>/);
});

args('--help prints the usage on stdout and exits 0, also after a command', async () => {
  const [top, inner] = await Promise.all([runCli(['--help']), runCli(['sessions', 'list', '--help'])]);
  for (const run of [top, inner]) {
    assert.is(run.code, 0);
    assert.match(run.stdout, /Usage: latchkey <command>/);
    assert.is(run.stderr, '');
  }
});

args('bad arguments exit 2 with one reason and the usage, never a stack', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['frobnicate'], /unknown command "frobnicate"/],
    [['sessions', 'list'], /expected 1 argument/],
    [['sessions', 'list', 'u1', '--bogus'], /Unknown option '--bogus'/],
    [['sessions', 'revoke', 'u1'], /expected <userId> and <sessionId>, or <userId> --all/],
    [
      ['sessions', 'revoke', 'u1', 'not-a-session-id', '--redis', 'redis://127.0.0.1:1'],
      /a session id is 22/,
    ],
    [['sessions', 'list', '', '--redis', 'redis://127.0.0.1:1'], /userId/],
    [['tokens', 'revoke-before', 'u1'], /give --redis <url>, --cluster <host:port,…> or --sentinels/],
    [['doctor', '--sentinels', '127.0.0.1:1'], /--sentinels needs --sentinel-name/],
    [['doctor', '--redis', 'http://example.com'], /redis:\/\/ or rediss:\/\//],
    [['doctor', '--redis', 'redis://127.0.0.1:1', '--wait-replicas', 'many'], /--wait-replicas must be/],
    [['stats', '--redis', 'redis://127.0.0.1:1', '--prefix', '{tag}'], /prefix/],
    [['stats', '--redis', 'redis://127.0.0.1:1', '--max-keys', '0'], /--max-keys must be/],
    [
      ['sessions', 'revoke', 'u1', '--all', '--redis', 'redis://127.0.0.1:1', '--wait-replicas', '-1'],
      /--wait-replicas/,
    ],
  ];
  const runs = await Promise.all(cases.map(([argv]) => runCli(argv)));
  runs.forEach((run, i) => {
    const [argv, reason] = cases[i] as [string[], RegExp];
    assert.is(run.code, 2, `${argv.join(' ')}: exit status`);
    assert.match(run.stderr, reason, `${argv.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, /Usage: latchkey/);
    assert.is(run.stdout, '');
    assertNoStack(run.stderr);
  });
});

args(
  'a session id that begins with "-" is an argument, not an option; other values go after --',
  async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const runs = await Promise.all([
      runCli(['sessions', 'revoke', 'u1', `-${'A'.repeat(21)}`, '--redis', url]),
      runCli(['sessions', 'revoke', 'u1', `--${'b'.repeat(20)}`, '--redis', url]),
      runCli(['sessions', 'list', '--redis', url, '--', '-u1']),
      runCli(['sessions', 'revoke', '--redis', url, 'u1', '--', `-${'C'.repeat(21)}`]),
    ]);
    for (const run of runs) {
      // Parsed as meant: the command went on to Redis (unreachable here), no usage error.
      assert.is(run.code, 1, run.stderr);
      assert.match(run.stderr, /^latchkey: cannot reach /);
    }
    const misspelt = await runCli(['sessions', 'revoke', 'u1', '-x', '--redis', url]);
    assert.is(misspelt.code, 2);
    assert.match(misspelt.stderr, /Unknown option '-x'/);
  },
);

args('an unreachable Redis is one clear line and exit 1', async () => {
  const port = await freePort();
  const runs = await Promise.all([
    runCli(['sessions', 'list', 'u1', '--redis', `redis://127.0.0.1:${port}`]),
    runCli(['doctor', '--redis', `redis://user:hunter2@127.0.0.1:${port}`]),
    runCli(['stats', '--cluster', `127.0.0.1:${port}`]),
    runCli(['sessions', 'list', 'u1', '--sentinels', `127.0.0.1:${port}`, '--sentinel-name', 'lk']),
  ]);
  for (const run of runs) {
    assert.is(run.code, 1);
    assert.match(
      run.stderr,
      /^latchkey: cannot reach the Redis (server|Cluster) at .*127\.0\.0\.1:\d+.*ECONNREFUSED|^latchkey: cannot reach .*: /,
    );
    assert.is(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.not.match(run.stderr, /hunter2/, 'the password in the URL was printed');
    assertNoStack(run.stderr);
  }
});

args.run();

const keys = suite('latchkey CLI: keys');

function envLines(text: string): Map<string, string> {
  const lines = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) lines.set(match[1], match[2]);
  }
  return lines;
}

keys(
  'keys generate prints env lines the server loads: a k4.secret whose k4.pid is the key id, a 32-byte secret',
  async () => {
    const [first, second] = await Promise.all([runCli(['keys', 'generate']), runCli(['keys', 'generate'])]);
    assert.is(first.code, 0, first.stderr);
    const env = envLines(first.stdout);
    assert.equal(
      [...env.keys()],
      ['PASETO_SECRET_KEY', 'PASETO_PUBLIC_KEY', 'PASETO_KEY_ID', 'LATCHKEY_SECRET'],
    );
    const ring = await KeyRing.fromPaserk({ signing: env.get('PASETO_SECRET_KEY') as string });
    assert.is(ring.signingKid, env.get('PASETO_KEY_ID'));
    assert.match(env.get('PASETO_KEY_ID') ?? '', /^k4\.pid\.[A-Za-z0-9_-]{44}$/);
    const verifier = await KeyRing.fromPaserk({
      verification: [{ key: env.get('PASETO_PUBLIC_KEY') as string }],
    });
    assert.equal(verifier.kids, [env.get('PASETO_KEY_ID')]);
    const secret = env.get('LATCHKEY_SECRET') as string;
    assert.is(Buffer.from(secret, 'base64url').length, 32);
    ServerSecret.fromBase64url(secret);
    // Fresh every time.
    const again = envLines(second.stdout);
    assert.is.not(again.get('PASETO_SECRET_KEY'), env.get('PASETO_SECRET_KEY'));
    assert.is.not(again.get('LATCHKEY_SECRET'), secret);
  },
);

keys(
  'keys public gives the same public key and id from the argument, stdin and PASETO_SECRET_KEY',
  async () => {
    const generated = await runCli(['keys', 'generate', '--json']);
    assert.is(generated.code, 0, generated.stderr);
    const key = JSON.parse(generated.stdout) as { kid: string; secretKey: string; publicKey: string };
    const runs = await Promise.all([
      runCli(['keys', 'public', key.secretKey, '--json']),
      runCli(['keys', 'public', '-', '--json'], { input: `${key.secretKey}\n` }),
      runCli(['keys', 'public', '--json'], { env: { PASETO_SECRET_KEY: key.secretKey } }),
    ]);
    for (const run of runs) {
      assert.is(run.code, 0, run.stderr);
      assert.equal(JSON.parse(run.stdout), { kid: key.kid, publicKey: key.publicKey });
    }
    const plain = await runCli(['keys', 'public', key.secretKey]);
    assert.equal(
      envLines(plain.stdout),
      new Map([
        ['PASETO_PUBLIC_KEY', key.publicKey],
        ['PASETO_KEY_ID', key.kid],
      ]),
    );
  },
);

keys('keys public refuses what is not a k4.secret without echoing it', async () => {
  const generated = JSON.parse((await runCli(['keys', 'generate', '--json'])).stdout) as {
    publicKey: string;
    secretKey: string;
  };
  const broken = `${generated.secretKey.slice(0, -4)}AAAA`;
  const runs = await Promise.all([
    runCli(['keys', 'public', generated.publicKey]),
    runCli(['keys', 'public', broken]),
    runCli(['keys', 'public']),
  ]);
  for (const run of runs) {
    assert.is(run.code, 2);
    assert.match(run.stderr, /k4\.secret/);
    assert.not.ok(run.stderr.includes(broken.slice(10, 40)), 'the key text was echoed');
    assertNoStack(run.stderr);
  }
});

keys.run();
