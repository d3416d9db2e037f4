// Bare Koa: no Redis at all, the ceiling of the HTTP stack on this machine.
import Koa from 'koa';
import { serve } from './_server.js';

const app = new Koa();
app.use((ctx) => {
  ctx.body = 'u1';
});

serve(app.callback(), []);
