/**
 * Token validity periods (`POST /token/set validity_period_start/_end`, the lost-token replacement): eduMFA's
 * wire format `YYYY-MM-DDThh:mm±hhmm` (minute precision, with the offset), stored as epoch ms.
 */
import { MfaError } from '../../core/errors.ts';
import type { TokenRecord } from '../../tokens/types.ts';

/** eduMFA's check_all text for a token used outside its validity period. */
export const OUTSIDE_VALIDITY = 'Outside validity period';

/** True when `now` lies before the token's start or after its end. */
export function outsideValidity(token: Pick<TokenRecord, 'validFrom' | 'validUntil'>, now: number): boolean {
  return (token.validFrom != null && now < token.validFrom) || (token.validUntil != null && now > token.validUntil);
}

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * Parses `YYYY-MM-DD[Thh:mm[:ss]][Z|±hhmm|±hh:mm]` (a space may replace `T`); without an offset the time is UTC,
 * without a time it is midnight. Seconds are cut (eduMFA keeps minutes). 400 / ERR301 when it is none of these.
 */
export function parseValidityDate(value: string, which: 'start' | 'end'): number {
  const m = DATE_RE.exec(value.trim());
  // eduMFA answers 400 with ERR301 here.
  const fail = () => new MfaError(301, 400, `Could not parse validity period ${which} date!`);
  if (!m) throw fail();
  const [, y, mo, d, h = '00', mi = '00', , tz] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi));
  const back = new Date(ms);
  if (
    back.getUTCFullYear() !== Number(y)
    || back.getUTCMonth() !== Number(mo) - 1
    || back.getUTCDate() !== Number(d)
    || Number(h) > 23
    || Number(mi) > 59
  )
    throw fail();
  let offsetMin = 0;
  if (tz && tz.toUpperCase() !== 'Z') {
    const digits = tz.replace(':', '');
    const oh = Number(digits.slice(1, 3));
    const om = Number(digits.slice(3, 5));
    if (oh > 23 || om > 59) throw fail();
    offsetMin = (digits[0] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  return ms - offsetMin * 60_000;
}

/** `YYYY-MM-DDThh:mm+0000` (UTC), eduMFA's stored format. */
export function formatValidityDate(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16)}+0000`;
}
