import { type Clock, systemClock } from '@latchkey/core';

/** What an email is for (`2fa`: a second-factor code for a pending login). */
export type MailPurpose = 'verify-email' | 'password-reset' | '2fa';

/** One message carrying a one-time code. */
export interface MailMessage {
  /** The normalized address. */
  readonly to: string;
  readonly purpose: MailPurpose;
  /** The code in clear: only the mailer ever sees it (never log it). */
  readonly code: string;
}

/**
 * Delivers codes. Plug a real implementation (SMTP, an email API) into `createApp({ mailer })`.
 * `send` is not awaited on the request path (so that whether a message goes out never shows in the
 * response time); it must handle its own retries and report failures through its own logging.
 */
export interface Mailer {
  send(message: MailMessage): Promise<void> | void;
}

/** A message as `GET /dev/outbox` shows it. */
export interface OutboxMessage {
  readonly to: string;
  readonly purpose: MailPurpose;
  readonly code: string;
  /** ISO 8601. */
  readonly sentAt: string;
}

/** Options of {@link DevOutbox}. */
export interface DevOutboxOptions {
  /** @default systemClock */
  readonly clock?: Clock;
  /**
   * Messages kept per address (the oldest go first).
   * @default 100
   */
  readonly perAddress?: number;
  /**
   * Addresses kept (the least recently written go first), so the outbox never grows without bound.
   * @default 1000
   */
  readonly maxAddresses?: number;
}

/**
 * The development mailer: keeps messages in memory for `GET /dev/outbox?to=`. Development mode only;
 * the server never mounts the route in production.
 */
export class DevOutbox implements Mailer {
  readonly #clock: Clock;
  readonly #perAddress: number;
  readonly #maxAddresses: number;
  readonly #byAddress = new Map<string, OutboxMessage[]>();

  constructor(options: DevOutboxOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#perAddress = options.perAddress ?? 100;
    this.#maxAddresses = options.maxAddresses ?? 1000;
  }

  send(message: MailMessage): void {
    const list = this.#byAddress.get(message.to) ?? [];
    // Re-insert so that Map order is least recently written first.
    this.#byAddress.delete(message.to);
    list.push({
      to: message.to,
      purpose: message.purpose,
      code: message.code,
      sentAt: new Date(this.#clock.now()).toISOString(),
    });
    if (list.length > this.#perAddress) list.splice(0, list.length - this.#perAddress);
    this.#byAddress.set(message.to, list);
    while (this.#byAddress.size > this.#maxAddresses) {
      const oldest = this.#byAddress.keys().next().value;
      if (oldest === undefined) break;
      this.#byAddress.delete(oldest);
    }
  }

  /** The messages sent to `to` (normalized), oldest first. */
  list(to: string): OutboxMessage[] {
    return [...(this.#byAddress.get(to) ?? [])];
  }
}

/**
 * The production placeholder: drops every message and logs that it did (without the code). Replace
 * it with a real mailer; until then verification and password reset cannot complete.
 */
export class DroppingMailer implements Mailer {
  readonly #warn: (line: string) => void;

  constructor(warn: (line: string) => void) {
    this.#warn = warn;
  }

  send(message: MailMessage): void {
    this.#warn(`no mailer configured: a ${message.purpose} message was dropped`);
  }
}
