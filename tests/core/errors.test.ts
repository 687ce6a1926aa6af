import test from 'ava';
import { ParameterError, TooManyRequestsError, UnavailableError } from '../../core/errors.ts';

test('the refusals a flood makes by the thousand carry no stack trace; other errors keep theirs', (t) => {
  const before = Error.stackTraceLimit;
  for (const e of [new TooManyRequestsError('Too many attempts', 2.5), new UnavailableError('Busy', 1)]) {
    t.is(e.stack, `${e.name}: ${e.message}`, 'no frames captured');
    t.truthy(e.headers['Retry-After']);
  }
  t.is(Error.stackTraceLimit, before, 'the global limit is restored');
  t.true((new ParameterError('bad').stack ?? '').split('\n').length > 1, 'a parameter error still says where it came from');
});
