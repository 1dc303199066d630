import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isMeshError } from '../../lib/errors.ts';
import { formatBrokerAddress, parseBrokerAddress } from '../../lib/protocol/broker-address.ts';
import { encodeKey, generateKeyPair } from '../../lib/crypto/keys.ts';

const KP = generateKeyPair();
const KEY = encodeKey(KP.publicKey);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function assertBad(url: unknown, fragment: string): void {
  assert.throws(() => parseBrokerAddress(url as string), (err: unknown) => {
    assert.ok(isMeshError(err, 'MESH_ERR_BAD_ADDRESS'), `expected MESH_ERR_BAD_ADDRESS, got ${String(err)}`);
    assert.ok(err.message.includes(fragment), `"${err.message}" should mention "${fragment}"`);
    return true;
  });
}

void describe('parseBrokerAddress', () => {
  const valid: [string, string, number, string?][] = [
    [`mesh://${KEY}@broker.example.com:4222`, 'broker.example.com', 4222],
    [`mesh://${KEY}@localhost:1`, 'localhost', 1],
    [`mesh://${KEY}@127.0.0.1:65535`, '127.0.0.1', 65535],
    [`mesh://${KEY}@[::1]:7000`, '::1', 7000],
    [`mesh://${KEY}@[2001:db8::42]:7000`, '2001:db8::42', 7000],
    [`mesh://${KEY}@[::ffff:10.0.0.1]:7000`, '::ffff:10.0.0.1', 7000],
    [`mesh://${KEY}@b-1.internal:80`, 'b-1.internal', 80],
    [`MESH://${KEY}@host:80`, 'host', 80, `mesh://${KEY}@host:80`],
    [`mesh://${KEY}@host:080`, 'host', 80, `mesh://${KEY}@host:80`],
  ];
  for (const [url, host, port, canonical] of valid) {
    void test(`accepts ${url.replace(KEY, 'KEY')}`, () => {
      const a = parseBrokerAddress(url);
      assert.equal(a.host, host);
      assert.equal(a.port, port);
      assert.equal(a.key, KEY);
      assert.equal(hex(a.publicKey), hex(KP.publicKey));
      assert.equal(a.url, canonical ?? url);
    });
  }

  const malformed: [string, unknown, string][] = [
    ['empty', '', 'broker address is empty'],
    ['not a string', 4222, 'must be a string'],
    ['leading whitespace', ` mesh://${KEY}@h:1`, 'whitespace at position 0'],
    ['inner whitespace', `mesh://${KEY}@h :1`, 'whitespace at position'],
    ['trailing newline', `mesh://${KEY}@h:1\n`, 'whitespace'],
    ['no scheme', `${KEY}@h:1`, "missing scheme 'mesh://'"],
    ['wrong scheme', `tcp://${KEY}@h:1`, "wrong scheme 'tcp:'"],
    ['missing //', `mesh:${KEY}@h:1`, "missing '//' after 'mesh:'"],
    ['missing key', 'mesh://h:1', "missing the broker's public key"],
    ['empty key', 'mesh://@h:1', "missing the broker's public key"],
    ['key too short', `mesh://${KEY.slice(0, 40)}@h:1`, 'got 40 characters'],
    ['key not base64url', `mesh://${KEY.slice(0, 42)}+@h:1`, 'not base64url'],
    ['standard base64 key with /', `mesh://${KEY.slice(0, 20)}/${KEY.slice(21)}@h:1`, 'that is standard base64'],
    ['password part', `mesh://${KEY}:secret@h:1`, 'password part'],
    ['two @', `mesh://${KEY}@a@h:1`, "more than one '@'"],
    ['missing host', `mesh://${KEY}@:4222`, 'missing host'],
    ['missing host and port', `mesh://${KEY}@`, 'missing host'],
    ['missing port', `mesh://${KEY}@host`, 'missing port'],
    ['empty port', `mesh://${KEY}@host:`, "missing port after ':'"],
    ['port 0', `mesh://${KEY}@host:0`, 'port 0 is not valid'],
    ['port too big', `mesh://${KEY}@host:65536`, 'port 65536 is out of range'],
    ['port not a number', `mesh://${KEY}@host:http`, "port 'http' is not an integer"],
    ['negative port', `mesh://${KEY}@host:-1`, "port '-1' is not an integer"],
    ['fractional port', `mesh://${KEY}@host:80.5`, "port '80.5' is not an integer"],
    ['path', `mesh://${KEY}@host:80/x`, "has a path ('/x')"],
    ['trailing slash', `mesh://${KEY}@host:80/`, 'has a path'],
    ['query', `mesh://${KEY}@host:80?a=1`, 'has a query'],
    ['fragment', `mesh://${KEY}@host:80#f`, 'has a fragment'],
    ['unbracketed IPv6', `mesh://${KEY}@::1:80`, 'must be in brackets'],
    ['unclosed bracket', `mesh://${KEY}@[::1:80`, "without a closing ']'"],
    ['bad IPv6', `mesh://${KEY}@[zz::1]:80`, 'not a valid IPv6 address'],
    ['IPv6 without port', `mesh://${KEY}@[::1]`, 'missing port'],
    ['bad IPv4', `mesh://${KEY}@300.1.1.1:80`, 'not a valid IPv4 address'],
    ['bad host name', `mesh://${KEY}@bad%host:80`, 'not a valid host name'],
  ];
  for (const [label, url, fragment] of malformed) {
    void test(`refuses ${label}`, () => assertBad(url, fragment));
  }
});

void describe('formatBrokerAddress', () => {
  void test('from a public key or its text; IPv6 gets brackets; round trips through the parser', () => {
    assert.equal(formatBrokerAddress({ publicKey: KP.publicKey, host: '::1', port: 7000 }), `mesh://${KEY}@[::1]:7000`);
    assert.equal(formatBrokerAddress({ key: KEY, host: '[::1]', port: 7000 }), `mesh://${KEY}@[::1]:7000`);
    const url = formatBrokerAddress({ key: KEY, host: '10.0.0.7', port: 4222 });
    assert.equal(parseBrokerAddress(url).url, url);
  });

  void test('refuses parts that do not make a valid address', () => {
    assert.throws(() => formatBrokerAddress({ key: KEY, host: 'h', port: 0 }), (e: unknown) => isMeshError(e, 'MESH_ERR_BAD_ADDRESS'));
    assert.throws(() => formatBrokerAddress({ key: KEY, host: 'h', port: 1.5 }), (e: unknown) => isMeshError(e, 'MESH_ERR_BAD_ADDRESS'));
    assert.throws(() => formatBrokerAddress({ key: 'short', host: 'h', port: 1 }), (e: unknown) => isMeshError(e, 'MESH_ERR_BAD_ADDRESS'));
    assert.throws(() => formatBrokerAddress({ key: KEY, host: '', port: 1 }), (e: unknown) => isMeshError(e, 'MESH_ERR_BAD_ADDRESS'));
    assert.throws(() => formatBrokerAddress({ publicKey: new Uint8Array(5), host: 'h', port: 1 }), (e: unknown) => isMeshError(e, 'MESH_ERR_BAD_KEY'));
  });
});
