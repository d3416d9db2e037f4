import { normalizeIdentifier } from '@latchkey/core';

/**
 * Request validation: the contract's email and password rules, and typed field access on parsed
 * bodies. Every failure is an {@link HttpError} 400 `invalid_request` thrown before anything changes.
 */

/** An error answered as JSON `{ error, message }` with `status`. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly expose = true;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

export function invalidRequest(message: string): HttpError {
  return new HttpError(400, 'invalid_request', message);
}

export const MAX_EMAIL_LENGTH = 254;
export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 1024;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// Controls and whitespace have no place inside an address (the outer ones were trimmed).
const FORBIDDEN_IN_EMAIL = /[\s\p{Cc}]/u;

/**
 * The normalized email (trimmed, NFC, lower-cased by core's normalizer), or an HttpError: at most 254
 * characters, exactly one `@`, a non-empty local part and a dotted domain. Nothing else is rewritten.
 */
export function parseEmail(value: unknown, field = 'email'): string {
  if (typeof value !== 'string') throw invalidRequest(`${field} must be a string`);
  if (value.length > 4 * MAX_EMAIL_LENGTH) throw invalidRequest(`${field} is too long`);
  let email: string;
  try {
    email = normalizeIdentifier(value);
  } catch {
    throw invalidRequest(`${field} must be an email address`);
  }
  if ([...email].length > MAX_EMAIL_LENGTH) {
    throw invalidRequest(`${field} must be at most ${MAX_EMAIL_LENGTH} characters`);
  }
  const parts = email.split('@');
  const local = parts[0] ?? '';
  const domain = parts[1] ?? '';
  const labels = domain.split('.');
  if (
    parts.length !== 2 ||
    local === '' ||
    labels.length < 2 ||
    labels.some((label) => label === '') ||
    FORBIDDEN_IN_EMAIL.test(email) ||
    LONE_SURROGATE.test(email)
  ) {
    throw invalidRequest(`${field} must be an email address`);
  }
  return email;
}

/**
 * A password to set: 8 to 1024 Unicode code points, kept exactly as sent. Text that is not valid
 * Unicode (a lone surrogate) is refused: it could not be hashed as sent.
 */
export function parseNewPassword(value: unknown, field = 'password'): string {
  const password = parsePresentedPassword(value, field);
  if ([...password].length < MIN_PASSWORD_LENGTH) {
    throw invalidRequest(`${field} must be at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  return password;
}

/**
 * A password presented for checking: a non-empty string of at most 1024 code points. Shorter than
 * the policy is allowed here (it simply does not match), so that a login never tells more than
 * "invalid credentials".
 */
export function parsePresentedPassword(value: unknown, field = 'password'): string {
  if (typeof value !== 'string') throw invalidRequest(`${field} must be a string`);
  if (value.length === 0) throw invalidRequest(`${field} must not be empty`);
  if (value.length > 2 * MAX_PASSWORD_LENGTH || [...value].length > MAX_PASSWORD_LENGTH) {
    throw invalidRequest(`${field} must be at most ${MAX_PASSWORD_LENGTH} characters`);
  }
  if (LONE_SURROGATE.test(value)) throw invalidRequest(`${field} is not valid Unicode text`);
  return value;
}

/** A required string field of at most `max` UTF-16 code units. */
export function parseString(value: unknown, field: string, max: number): string {
  if (typeof value !== 'string') throw invalidRequest(`${field} must be a string`);
  if (value.length > max) throw invalidRequest(`${field} is too long`);
  return value;
}

/** The parsed body as a plain object (JSON arrays and scalars are refused). */
export function bodyObject(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw invalidRequest('the body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

/** An own property of a parsed body (never one inherited from `Object.prototype`). */
export function field(body: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(body, name) ? body[name] : undefined;
}
