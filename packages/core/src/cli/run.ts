import { parseArgs } from 'node:util';
import { isLatchkeyError } from '../errors.js';
import { KeySpace } from '../keys.js';
import type { RedisClient } from '../redis.js';
import { checkUserId, isSessionId } from '../sessions.js';
import { close, connect, reason, resolveTarget } from './connect.js';
import { doctor } from './doctor.js';
import { type CliIo, CommandFailed, EXIT_FAILED, EXIT_USAGE, UsageError } from './io.js';
import { keysGenerate, keysPublic } from './keys.js';
import { parseMaxKeys, stats } from './stats.js';
import { revokeEverything, sessionsList, sessionsRevokeOne, storeSettings, waitReplicas } from './users.js';

export const USAGE = `Usage: latchkey <command> [options]

Keys
  keys generate [--json]             a PASETO v4 signing key (PASERK k4.secret and k4.public), its key
                                     id (k4.pid) and a fresh LATCHKEY_SECRET, as env lines
  keys public [<k4.secret> | -] [--json]
                                     the public key and key id of a signing key (the argument, "-" for
                                     stdin, or PASETO_SECRET_KEY)
Redis
  doctor [--wait-replicas <n>] [--json]
                                     checks version, maxmemory-policy, persistence, replicas, Cluster
                                     slots and clock skew; exit status 1 when a check fails
  stats [--max-keys <n>] [--json]    keys, memory and keys without TTL per key kind under the prefix
Users
  sessions list <userId> [--json]    the user's live sessions, newest first
  sessions revoke <userId> (<sessionId> | --all) [--json]
                                     ends one session, or every session of the user
  tokens revoke-before <userId> [--json]
                                     ends every session, refresh and access token of the user issued
                                     before now (the same call as sessions revoke --all)
                                     (a session id may begin with -; a user id that does goes
                                     after --, e.g. sessions list --redis <url> -- -u1)
Where (every command but keys)
  --redis <url>                      a redis:// or rediss:// URL (default: REDIS_URL)
  --cluster <host:port,…>            Redis Cluster start-up nodes (default: REDIS_CLUSTER)
  --sentinels <host:port,…> --sentinel-name <name>
                                     a Sentinel group's master (default: REDIS_SENTINELS and
                                     REDIS_SENTINEL_NAME)
  --prefix <prefix>                  the stores' key prefix (default: lk)
  --wait-replicas <n>                revocations wait for n replicas (default: REDIS_WAIT_REPLICAS)
  SESSION_IDLE_TTL_SECONDS and SESSION_ABSOLUTE_TTL_SECONDS are read as the example server reads them.

Exit status: 0 done, 1 failed (a failing check, Redis unreachable, no such session), 2 bad arguments.
`;

const WHERE = {
  redis: { type: 'string' },
  cluster: { type: 'string' },
  sentinels: { type: 'string' },
  'sentinel-name': { type: 'string' },
  prefix: { type: 'string' },
  'wait-replicas': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = {
  redis?: string | undefined;
  cluster?: string | undefined;
  sentinels?: string | undefined;
  'sentinel-name'?: string | undefined;
  prefix?: string | undefined;
  'wait-replicas'?: string | undefined;
  json?: boolean | undefined;
  all?: boolean | undefined;
  'max-keys'?: string | undefined;
  help?: boolean | undefined;
};

/** `--help` anywhere: the usage on stdout, exit 0. */
class HelpRequested extends Error {}

function parse(
  args: readonly string[],
  extra: Record<string, { type: 'string' | 'boolean' }> = {},
): { values: Values; positionals: string[] } {
  const options = { ...WHERE, ...extra };
  try {
    const { values, positionals } = parseArgs({
      args: sessionIdsAsValues(args, options),
      options,
      allowPositionals: true,
      strict: true,
    });
    if (values.help === true) throw new HelpRequested();
    return { values: values as Values, positionals };
  } catch (error) {
    if (error instanceof HelpRequested) throw error;
    // parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes and a one-line message.
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/**
 * A session id is random base64url and begins with `-` one time in 32: `sessions revoke u1 -Xf…`
 * must not read it as an unknown option. Arguments of a session id's shape that name no option (and
 * are not the value of one) move behind `--`, in order; anything else starting with `-` stays an
 * option, so a misspelt one is still refused (a user id that begins with `-` goes after `--`).
 */
function sessionIdsAsValues(
  args: readonly string[],
  options: Record<string, { type: 'string' | 'boolean' }>,
): string[] {
  const flags: string[] = [];
  const values: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') {
      values.push(...args.slice(i + 1));
      break;
    }
    const option = arg === '-h' ? options['help'] : options[/^--([^=]+)/.exec(arg)?.[1] ?? ''];
    if (option?.type === 'string' && !arg.includes('=') && i + 1 < args.length) {
      flags.push(arg, args[++i] as string); // an option's value, whatever it looks like
    } else if (arg.startsWith('-') && (option !== undefined || !isSessionId(arg))) {
      flags.push(arg);
    } else {
      values.push(arg);
    }
  }
  return [...flags, '--', ...values];
}

function expect(positionals: readonly string[], count: number, what: string): void {
  if (positionals.length !== count)
    throw new UsageError(`${what}: expected ${count} argument${count === 1 ? '' : 's'}`);
}

/**
 * Runs one command line (without `node` and the script). Never throws: bad arguments print the
 * usage to stderr (exit 2); failures print one line (exit 1); no stack trace reaches the operator.
 */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  let redis: RedisClient | undefined;
  try {
    const [group] = argv;
    if (group === undefined || group === '--help' || group === '-h' || group === 'help') {
      if (group === undefined) throw new UsageError('no command given');
      io.out(USAGE);
      return 0;
    }
    // `doctor` and `stats` are one word; the others are two (`keys generate`).
    const single = group === 'doctor' || group === 'stats';
    const key = single ? group : `${group} ${argv[1] ?? ''}`.trim();
    const rest = argv.slice(single ? 1 : 2);
    // Every argument and variable is checked before connecting: a usage error is exit 2 either way.
    const openRedis = async (values: Values): Promise<RedisClient> => {
      const target = resolveTarget(values, io.env);
      if (values.prefix !== undefined) checkPrefix(values.prefix);
      if (key !== 'stats') storeSettings(io, userOptions(values));
      else parseMaxKeys(values['max-keys']);
      redis = await connect(target);
      return redis;
    };
    switch (key) {
      case 'keys generate': {
        const { values, positionals } = parse(rest);
        expect(positionals, 0, key);
        await keysGenerate(io, values.json === true);
        return 0;
      }
      case 'keys public': {
        const { values, positionals } = parse(rest);
        if (positionals.length > 1) throw new UsageError('keys public: expected at most 1 argument');
        await keysPublic(io, positionals[0], values.json === true);
        return 0;
      }
      case 'sessions list': {
        const { values, positionals } = parse(rest);
        expect(positionals, 1, key);
        const options = userOptions(values);
        checkUser(positionals[0]);
        return await sessionsList(await openRedis(values), io, positionals[0] as string, options);
      }
      case 'sessions revoke': {
        const { values, positionals } = parse(rest, { all: { type: 'boolean' } });
        const options = userOptions(values);
        if (values.all === true) {
          expect(positionals, 1, `${key} --all`);
          checkUser(positionals[0]);
          return await revokeEverything(await openRedis(values), io, positionals[0] as string, options);
        }
        if (positionals.length !== 2)
          throw new UsageError(`${key}: expected <userId> and <sessionId>, or <userId> --all`);
        const [userId, sessionId] = positionals as [string, string];
        checkUser(userId);
        if (!isSessionId(sessionId)) {
          throw new UsageError('a session id is 22 characters of base64url (as `sessions list` shows it)');
        }
        return await sessionsRevokeOne(await openRedis(values), io, userId, sessionId, options);
      }
      case 'tokens revoke-before': {
        const { values, positionals } = parse(rest);
        expect(positionals, 1, key);
        checkUser(positionals[0]);
        return await revokeEverything(
          await openRedis(values),
          io,
          positionals[0] as string,
          userOptions(values),
        );
      }
      case 'doctor': {
        const { values, positionals } = parse(rest);
        expect(positionals, 0, 'doctor');
        const target = resolveTarget(values, io.env);
        const durability = waitReplicas(values['wait-replicas'] ?? io.env['REDIS_WAIT_REPLICAS'], io.env);
        return await doctor(io, target, durability?.replicas ?? 0, values.json === true);
      }
      case 'stats': {
        const { values, positionals } = parse(rest, { 'max-keys': { type: 'string' } });
        expect(positionals, 0, 'stats');
        return await stats(await openRedis(values), io, {
          prefix: values.prefix,
          maxKeys: values['max-keys'],
          json: values.json === true,
        });
      }
      default:
        throw new UsageError(`unknown command "${key}"`);
    }
  } catch (error) {
    if (error instanceof HelpRequested) {
      io.out(USAGE);
      return 0;
    }
    if (error instanceof UsageError) {
      io.err(`latchkey: ${error.message}\n\n${USAGE}`);
      return EXIT_USAGE;
    }
    if (error instanceof CommandFailed) {
      io.err(`latchkey: ${error.message}\n`);
      return EXIT_FAILED;
    }
    // A store's typed error (Redis unavailable, refused) or anything unforeseen: one line, no stack.
    const code = isLatchkeyError(error) ? ` (${error.code})` : '';
    io.err(`latchkey: ${reason(error)}${code}\n`);
    return EXIT_FAILED;
  } finally {
    if (redis !== undefined) await close(redis);
  }
}

/** The stores' prefix rule, checked before connecting. */
function checkPrefix(prefix: string): void {
  try {
    new KeySpace(prefix);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/** The stores' user id rule, checked before connecting. */
function checkUser(userId: string | undefined): void {
  try {
    checkUserId(userId as string);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

function userOptions(values: Values): {
  prefix: string | undefined;
  waitReplicas: string | undefined;
  json: boolean;
} {
  return { prefix: values.prefix, waitReplicas: values['wait-replicas'], json: values.json === true };
}
