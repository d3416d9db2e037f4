// Peer: express-session with connect-redis on ioredis (the usual Express recipe): load with GET, and
// the sliding renewal through connect-redis's `touch` (EXPIRE) plus a rolling cookie.
import RedisStore from 'connect-redis';
import express from 'express';
import session from 'express-session';
import { connectRedis, scenarioEnv, serve } from './_server.js';

declare module 'express-session' {
  interface SessionData {
    userId: string;
  }
}

const env = scenarioEnv();
const redis = connectRedis(env);

const app = express();
app.disable('x-powered-by');
app.disable('etag');
app.use(
  session({
    store: new RedisStore({ client: redis, prefix: `${env.prefix}:` }),
    secret: 'bench-signing-key-0123456789abcdef',
    name: 'sid',
    resave: false,
    saveUninitialized: false,
    rolling: true,
    cookie: { maxAge: 3_600_000, httpOnly: true, sameSite: 'lax', secure: false },
  }),
);
app.get('/__setup', (req, res) => {
  req.session.userId = 'u1';
  res.json({ headers: {} });
});
app.get('/', (req, res) => {
  const userId = req.session.userId;
  if (typeof userId !== 'string') {
    res.status(401).end();
    return;
  }
  res.send(userId);
});

serve(app, [redis]);
