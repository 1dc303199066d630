// HOST:PORT, the one parser of listen, advertised, announced and broker
// addresses: what it accepts, and the sentence it gives for what it does not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkHostPort, formatHostPort, parseHostPort } from '../../lib/protocol/host-port.ts';

test('host names, IPv4 and bracketed IPv6 with a port', () => {
  assert.deepEqual(checkHostPort('127.0.0.1:4222'), { host: '127.0.0.1', port: 4222 });
  assert.deepEqual(checkHostPort('broker-1.example.com:65535'), { host: 'broker-1.example.com', port: 65535 });
  assert.deepEqual(checkHostPort('localhost:1'), { host: 'localhost', port: 1 });
  assert.deepEqual(checkHostPort('[::1]:4222'), { host: '::1', port: 4222 });
  assert.deepEqual(checkHostPort('[fe80::1:2]:9'), { host: 'fe80::1:2', port: 9 });
  assert.deepEqual(checkHostPort('0.0.0.0:0', { allowPortZero: true }), { host: '0.0.0.0', port: 0 });
  assert.deepEqual(checkHostPort('[::]:0', { allowPortZero: true }), { host: '::', port: 0 });
});

test('what is wrong is said in words', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /missing host/],
    ['host', /missing port after the host/],
    [':4222', /missing host before the port/],
    ['host:', /missing port after ':'/],
    ['::1:4222', /IPv6 host '::1' must be in brackets, e.g. \[::1\]:4222/],
    ['[::1]', /missing port after the host/],
    ['[::1', /without a closing/],
    ['[]:1', /missing host between/],
    ['[1.2.3.4]:1', /not a valid IPv6 address/],
    ['[::1]x:1', /unexpected 'x:1' after '\]'/],
    ['300.1.1.1:1', /not a valid IPv4 address/],
    ['bad_host!:1', /not a valid host name/],
    ['-lead.example:1', /not a valid host name/],
    ['host:0', /port 0 is not valid here/],
    ['host:65536', /port 65536 is out of range \(1 to 65535\)/],
    ['host:-1', /port '-1' is not an integer/],
    ['host:12a', /port '12a' is not an integer/],
    ['host:000001', /port '000001' is not an integer/],
  ];
  for (const [text, problem] of cases) {
    const result = checkHostPort(text);
    assert.equal(typeof result, 'string', `${JSON.stringify(text)} is refused`);
    assert.match(result as string, problem, JSON.stringify(text));
    assert.equal(parseHostPort(text), undefined);
  }
  assert.match(checkHostPort('host:65536', { allowPortZero: true }) as string, /out of range \(0 to 65535\)/);
});

test('formatHostPort and checkHostPort round-trip (property)', () => {
  const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
  const host = fc.oneof(
    fc.array(label, { minLength: 1, maxLength: 4 }).map((labels) => labels.join('.')).filter((h) => !/^[0-9.]+$/.test(h)),
    fc.ipV4(),
    fc.ipV6(),
  );
  fc.assert(
    fc.property(host, fc.integer({ min: 1, max: 65535 }), (h, port) => {
      assert.deepEqual(checkHostPort(formatHostPort(h, port)), { host: h, port });
    }),
    { numRuns: 1000 },
  );
});
