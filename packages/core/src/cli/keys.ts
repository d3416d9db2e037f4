import { generateDevelopmentKey, publicKeyOf } from '../key-ring.js';
import { ServerSecret } from '../secret.js';
import { type CliIo, json, UsageError } from './io.js';

/**
 * `keys generate`: a fresh Ed25519 signing key as PASERK (`k4.secret` / `k4.public`), its key id (the
 * `k4.pid` that `KeyRing` uses by default) and a fresh `LATCHKEY_SECRET`, as env lines (the example
 * server's variable names) or, with `--json`, one object.
 */
export async function keysGenerate(io: CliIo, asJson: boolean): Promise<void> {
  const key = await generateDevelopmentKey();
  const secret = ServerSecret.generateText();
  if (asJson) {
    io.out(json({ kid: key.kid, secretKey: key.secret, publicKey: key.public, latchkeySecret: secret }));
    return;
  }
  io.out(
    [
      `# latchkey keys generate, ${new Date().toISOString()}: keep this file secret.`,
      '# The signing key (a PASERK k4.secret): the server that issues access tokens.',
      `PASETO_SECRET_KEY=${key.secret}`,
      '# Its public key and key id (k4.pid, the kid in token footers): for services that only verify.',
      `PASETO_PUBLIC_KEY=${key.public}`,
      `PASETO_KEY_ID=${key.kid}`,
      '# The server secret (32 random bytes, base64url) every keyed digest is derived from.',
      `LATCHKEY_SECRET=${secret}`,
      '',
    ].join('\n'),
  );
}

/**
 * `keys public [<k4.secret> | -]`: the public PASERK and key id of a signing key given as the argument,
 * on standard input (`-`), or in `PASETO_SECRET_KEY` (so that it need not appear in `ps` or a shell
 * history).
 */
export async function keysPublic(io: CliIo, argument: string | undefined, asJson: boolean): Promise<void> {
  let text: string | undefined;
  if (argument === '-') text = (await io.readStdin()).trim();
  else text = argument ?? io.env['PASETO_SECRET_KEY']?.trim();
  if (text === undefined || text === '') {
    throw new UsageError(
      'keys public needs a k4.secret PASERK: as the argument, "-" for stdin, or PASETO_SECRET_KEY',
    );
  }
  let key: { kid: string; public: string };
  try {
    key = await publicKeyOf(text);
  } catch {
    // The message never echoes the text: it may be a real secret key with a typo.
    throw new UsageError('the key is not a valid PASERK k4.secret.… key');
  }
  if (asJson) {
    io.out(json({ kid: key.kid, publicKey: key.public }));
    return;
  }
  io.out(`PASETO_PUBLIC_KEY=${key.public}\nPASETO_KEY_ID=${key.kid}\n`);
}
