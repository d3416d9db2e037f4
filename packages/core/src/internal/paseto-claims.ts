/** What {@link registeredClaimsFailure} checks against. */
export interface RegisteredClaimRules {
  /** The current instant, epoch ms. */
  readonly now: number;
  readonly clockToleranceMs: number;
  /** The required `iss`, if any. */
  readonly issuer: string | undefined;
  /** The required `aud`, if any. */
  readonly audience: string | undefined;
}

/** paseto's RFC 3339 date-time grammar (`T` and `Z` upper case, any number of fraction digits). */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):(\d{2}))$/u;

/**
 * @internal paseto's checks of the registered claims of a verified token, as its `Verify` makes them
 * with latchkey's options (`exp` required; `exp`, `nbf`, `iat` with the clock tolerance; `iss` and
 * `aud` when configured), in paseto's order — so a token that breaks several rules fails for the same
 * reason as it did through paseto: first any unreadable date or non-string `aud` / `iss` / `sub` /
 * `jti` (`claims`), then a missing `exp` (`claims`), `exp` passed (`expired`), `nbf` or `iat` ahead
 * (`not_yet_valid`), and last the issuer and audience (`claims`).
 *
 * @returns the failure, or `null` when the claims pass.
 */
export function registeredClaimsFailure(
  claims: Record<string, unknown>,
  rules: RegisteredClaimRules,
): 'claims' | 'expired' | 'not_yet_valid' | null {
  const exp = claimDate(claims.exp);
  const iat = claimDate(claims.iat);
  const nbf = claimDate(claims.nbf);
  if (exp === null || iat === null || nbf === null) return 'claims';
  for (const value of [claims.aud, claims.iss, claims.sub, claims.jti]) {
    if (value !== undefined && typeof value !== 'string') return 'claims';
  }
  if (exp === undefined) return 'claims';
  const { now, clockToleranceMs } = rules;
  // paseto's `now > exp + tolerance`, negated so that a clock returning NaN fails closed (paseto
  // threw on an invalid date there).
  if (!(now <= exp + clockToleranceMs)) return 'expired';
  if (nbf !== undefined && now + clockToleranceMs < nbf) return 'not_yet_valid';
  if (iat !== undefined && now + clockToleranceMs < iat) return 'not_yet_valid';
  if (rules.audience !== undefined && claims.aud !== rules.audience) return 'claims';
  if (rules.issuer !== undefined && claims.iss !== rules.issuer) return 'claims';
  return null;
}

/**
 * A date claim as paseto reads it: epoch ms (fraction digits beyond the third dropped), `undefined`
 * when absent, `null` when not an RFC 3339 date-time of a real calendar day and time.
 */
function claimDate(value: unknown): number | undefined | null {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') return null;
  const match = RFC3339.exec(value);
  if (match === null) return null;
  const year = Number(match[1]);
  const month = Number(match[2]);
  const day = Number(match[3]);
  const hour = Number(match[4]);
  const minute = Number(match[5]);
  const second = Number(match[6]);
  const offsetHour = match[10] === undefined ? 0 : Number(match[10]);
  const offsetMinute = match[11] === undefined ? 0 : Number(match[11]);
  if (
    !validDay(year, month, day) ||
    hour > 23 ||
    minute > 59 ||
    second > 59 ||
    offsetHour > 23 ||
    offsetMinute > 59
  ) {
    return null;
  }
  const milliseconds = Number((match[7] ?? '').padEnd(3, '0').slice(0, 3));
  // setUTCFullYear, not Date.UTC: Date.UTC reads the years 0–99 as 1900–1999.
  const instant = new Date(0);
  instant.setUTCFullYear(year, month - 1, day);
  const at = instant.setUTCHours(hour, minute, second, milliseconds);
  if (match[8] === 'Z') return at;
  return at - (match[9] === '+' ? 1 : -1) * (offsetHour * 60 + offsetMinute) * 60_000;
}

function validDay(year: number, month: number, day: number): boolean {
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days =
    month === 2 ? (leap ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
  return day <= days;
}
