import test from 'ava';
import { ParameterError } from '../../core/errors.ts';
import { createTokenRegistry, OTP_TOKEN_TYPES } from '../../tokens/index.ts';
import type { TokenType } from '../../tokens/types.ts';

test('OTP registry: get, require, list, actions', (t) => {
  const reg = createTokenRegistry(OTP_TOKEN_TYPES);
  t.deepEqual(
    reg.list().map((x) => x.type),
    ['hotp', 'totp', 'spass', 'pw'],
  );
  t.is(reg.get('hotp')?.serialPrefix, 'OATH');
  t.is(reg.get('TOTP')?.type, 'totp', 'case-insensitive');
  t.is(reg.get('push'), undefined);
  t.is(reg.require('spass').type, 'spass');
  const err = t.throws(() => reg.require('foo'), { instanceOf: ParameterError });
  t.is(err?.message, 'Invalid tokentype provided. ttype: foo');
  t.deepEqual(
    reg
      .actions()
      .map((a) => a.name)
      .sort(),
    [
      'hotp_hashlib',
      'hotp_otplen',
      'hotp_window',
      'losttoken_PW_contents',
      'losttoken_PW_length',
      'losttoken_valid',
      'totp_hashlib',
      'totp_otplen',
      'totp_timestep',
      'totp_window',
    ],
  );
  reg.actions().pop();
  t.is(reg.actions().length, 10, 'actions() returns a copy');
});

test('registry rejects duplicate types and conflicting actions, merges identical ones', (t) => {
  const [hotp] = OTP_TOKEN_TYPES as [TokenType];
  t.throws(() => createTokenRegistry([hotp, { ...hotp, type: 'HOTP' }]), { message: /registered twice/ });
  const shared = { name: 'x_action', scope: 'enrollment', type: 'bool', description: 'shared' } as const;
  const a: TokenType = { ...hotp, type: 'a', policyActions: [shared] };
  const b: TokenType = { ...hotp, type: 'b', policyActions: [{ ...shared }] };
  t.deepEqual(
    createTokenRegistry([a, b])
      .actions()
      .map((x) => x.name),
    ['x_action'],
  );
  const c: TokenType = { ...hotp, type: 'c', policyActions: [{ ...shared, description: 'other' }] };
  t.throws(() => createTokenRegistry([a, c]), { message: /declared differently/ });
  const d: TokenType = { ...hotp, type: 'd', policyActions: [{ ...shared, scope: 'authentication' }] };
  t.deepEqual(
    createTokenRegistry([a, d])
      .actions()
      .map((x) => `${x.scope}:${x.name}`),
    ['enrollment:x_action', 'authentication:x_action'],
  );
});
