/**
 * A deterministic pseudo-random generator (mulberry32) for randomized tests: the same seed gives the
 * same sequence, so a failing run can be replayed by its seed. Not for secrets.
 *
 * @returns a function giving numbers in [0, 1), like `Math.random`.
 * @example
 * const random = seededRandom(Number(process.env.SEED ?? 1));
 * const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)];
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
