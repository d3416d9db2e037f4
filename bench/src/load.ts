// One autocannon run against 127.0.0.1, with latency percentiles kept at 10 µs resolution
// (autocannon's own histogram has 1 ms resolution, too coarse for sub-millisecond answers).
import { request } from 'node:http';
import autocannon from 'autocannon';

export interface LoadResult {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly non2xx: number;
  readonly errors: number;
}

const BUCKET_MS = 0.01;
const BUCKETS = 1_000_000; // up to 10 s

export async function runLoad(options: {
  port: number;
  headers: Record<string, string>;
  connections: number;
  durationS: number;
}): Promise<LoadResult> {
  const histogram = new Uint32Array(BUCKETS);
  let ok = 0;
  const started = process.hrtime.bigint();
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: `http://127.0.0.1:${options.port}/`,
        headers: options.headers,
        connections: options.connections,
        pipelining: 1,
        duration: options.durationS,
        timeout: 10,
      },
      (error, res) => (error ? reject(error) : resolve(res)),
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode >= 200 && statusCode < 300) {
        ok++;
        histogram[Math.min(BUCKETS - 1, Math.round(responseTime / BUCKET_MS))]!++;
      }
    });
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const requests = result.requests.total;
  return {
    requests,
    seconds,
    rps: requests / Math.max(result.duration, 0.001),
    p50Ms: percentile(histogram, ok, 0.5),
    p99Ms: percentile(histogram, ok, 0.99),
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

function percentile(histogram: Uint32Array, count: number, q: number): number {
  if (count === 0) return Number.NaN;
  const rank = Math.ceil(q * count);
  let seen = 0;
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i]!;
    if (seen >= rank) return i * BUCKET_MS;
  }
  return Number.NaN;
}

/** One plain request, for `/__setup` and the sanity check before the load. */
export function fetchOnce(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; setCookies: string[]; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, setCookies: res.headers['set-cookie'] ?? [], body }),
      );
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`timeout on ${path}`)));
    req.on('error', reject);
    req.end();
  });
}

/** Turns the Set-Cookie headers of a response into one Cookie request header. */
export function cookieHeader(setCookies: readonly string[]): string {
  return setCookies.map((c) => c.split(';', 1)[0]!.trim()).join('; ');
}
