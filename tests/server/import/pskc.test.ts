/**
 * PSKC (RFC 6030) files: plain, pre-shared-key encrypted (AES-128-CBC, HMAC-SHA1 value MACs) and PBKDF2
 * password-encrypted containers, written here after the RFC's examples (its Figure-style layout, the RFC's HOTP
 * test secret "12345678901234567890"); encrypted values are made by this test's own AES-CBC/HMAC code.
 */
import crypto from 'node:crypto';
import test from 'ava';
import { planPskc, PskcError } from '../../../server/import/pskc.ts';

const SECRET = Buffer.from('12345678901234567890');
const PSK = Buffer.from('12345678901234567890123456789012', 'hex');
const NS =
  'xmlns="urn:ietf:params:xml:ns:keyprov:pskc" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:pkcs5="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#" xmlns:xenc11="http://www.w3.org/2009/xmlenc11#"';
const AES128 = 'http://www.w3.org/2001/04/xmlenc#aes128-cbc';

/** xmlenc AES-CBC: IV in front, PKCS#7-style padding (a valid xmlenc padding). */
function xenc(key: Buffer, plain: Buffer): Buffer {
  const iv = crypto.randomBytes(16);
  const c = crypto.createCipheriv(key.length === 16 ? 'aes-128-cbc' : 'aes-256-cbc', key, iv);
  return Buffer.concat([iv, c.update(plain), c.final()]);
}
const encrypted = (cipher: Buffer) =>
  `<EncryptedValue><xenc:EncryptionMethod Algorithm="${AES128}"/><xenc:CipherData><xenc:CipherValue>${cipher.toString('base64')}</xenc:CipherValue></xenc:CipherData></EncryptedValue>`;

const plainFile = `<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" Id="exampleID1" ${NS}>
  <KeyPackage>
    <DeviceInfo><Manufacturer>Manufacturer</Manufacturer><SerialNo>987654321</SerialNo></DeviceInfo>
    <CryptoModuleInfo><Id>CM_ID_001</Id></CryptoModuleInfo>
    <Key Id="12345678" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
      <Issuer>Issuer</Issuer>
      <AlgorithmParameters><ResponseFormat Length="8" Encoding="DECIMAL"/></AlgorithmParameters>
      <Data>
        <Secret><PlainValue>${SECRET.toString('base64')}</PlainValue></Secret>
        <Counter><PlainValue>7</PlainValue></Counter>
      </Data>
    </Key>
  </KeyPackage>
  <KeyPackage>
    <DeviceInfo><Manufacturer>Manufacturer</Manufacturer><SerialNo>TOTP-0001</SerialNo></DeviceInfo>
    <Key Id="2" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp">
      <AlgorithmParameters><Suite>HMAC-SHA256</Suite><ResponseFormat Length="6" Encoding="DECIMAL"/></AlgorithmParameters>
      <Data>
        <Secret><PlainValue>${SECRET.toString('base64')}</PlainValue></Secret>
        <TimeInterval><PlainValue>60</PlainValue></TimeInterval>
      </Data>
    </Key>
  </KeyPackage>
  <KeyPackage>
    <DeviceInfo><SerialNo>OCRA-1</SerialNo></DeviceInfo>
    <Key Id="3" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc#OCRA-1:HOTP-SHA512-8:C-QN08">
      <Data><Secret><PlainValue>${SECRET.toString('base64')}</PlainValue></Secret></Data>
    </Key>
  </KeyPackage>
</KeyContainer>`;

/** RFC 6030 §6.1's shape: a pre-shared key named in EncryptionKey, the MAC key encrypted with it, ValueMACs. */
function pskFile(opts: { tamper?: boolean } = {}): string {
  const macKey = crypto.randomBytes(20);
  const secret = xenc(PSK, SECRET);
  const mac = crypto.createHmac('sha1', macKey).update(secret).digest();
  if (opts.tamper) secret[secret.length - 1]! ^= 1;
  return `<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" ${NS}>
  <EncryptionKey><ds:KeyName>Pre-shared-key</ds:KeyName></EncryptionKey>
  <MACMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1">
    <MACKey><xenc:EncryptionMethod Algorithm="${AES128}"/><xenc:CipherData><xenc:CipherValue>${xenc(PSK, macKey).toString('base64')}</xenc:CipherValue></xenc:CipherData></MACKey>
  </MACMethod>
  <KeyPackage>
    <DeviceInfo><Manufacturer>Manufacturer</Manufacturer><SerialNo>987654321</SerialNo></DeviceInfo>
    <Key Id="12345678" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
      <AlgorithmParameters><ResponseFormat Length="8" Encoding="DECIMAL"/></AlgorithmParameters>
      <Data>
        <Secret>${encrypted(secret)}<ValueMAC>${mac.toString('base64')}</ValueMAC></Secret>
        <Counter><PlainValue>0</PlainValue></Counter>
      </Data>
    </Key>
  </KeyPackage>
</KeyContainer>`;
}

/** RFC 6030 §6.2's shape: a key derived with PBKDF2 from a password. */
function passwordFile(password: string): string {
  const salt = crypto.randomBytes(8);
  const key = crypto.pbkdf2Sync(password, salt, 1000, 16, 'sha1');
  const macKey = crypto.randomBytes(20);
  const secret = xenc(key, SECRET);
  return `<?xml version="1.0" encoding="UTF-8"?>
<pskc:KeyContainer Version="1.0" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc" xmlns:xenc11="http://www.w3.org/2009/xmlenc11#" xmlns:pkcs5="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">
  <pskc:EncryptionKey>
    <xenc11:DerivedKey>
      <xenc11:KeyDerivationMethod Algorithm="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2">
        <pkcs5:PBKDF2-params>
          <Salt><Specified>${salt.toString('base64')}</Specified></Salt>
          <IterationCount>1000</IterationCount>
          <KeyLength>16</KeyLength>
          <PRF/>
        </pkcs5:PBKDF2-params>
      </xenc11:KeyDerivationMethod>
      <xenc11:MasterKeyName>My Password 1</xenc11:MasterKeyName>
    </xenc11:DerivedKey>
  </pskc:EncryptionKey>
  <pskc:MACMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1">
    <pskc:MACKey><xenc:EncryptionMethod Algorithm="${AES128}"/><xenc:CipherData><xenc:CipherValue>${xenc(key, macKey).toString('base64')}</xenc:CipherValue></xenc:CipherData></pskc:MACKey>
  </pskc:MACMethod>
  <pskc:KeyPackage>
    <pskc:DeviceInfo><pskc:SerialNo>PW-987654321</pskc:SerialNo></pskc:DeviceInfo>
    <pskc:Key Id="123456" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
      <pskc:AlgorithmParameters><pskc:ResponseFormat Length="6" Encoding="DECIMAL"/></pskc:AlgorithmParameters>
      <pskc:Data><pskc:Secret>
        <pskc:EncryptedValue Id="ED"><xenc:EncryptionMethod Algorithm="${AES128}"/><xenc:CipherData><xenc:CipherValue>${secret.toString('base64')}</xenc:CipherValue></xenc:CipherData></pskc:EncryptedValue>
        <pskc:ValueMAC>${crypto.createHmac('sha1', macKey).update(secret).digest('base64')}</pskc:ValueMAC>
      </pskc:Secret><pskc:Counter><pskc:PlainValue>3</pskc:PlainValue></pskc:Counter></pskc:Data>
    </pskc:Key>
  </pskc:KeyPackage>
</pskc:KeyContainer>`;
}

const owner = { username: 'alice', realm: 'corp' };

test('plain PSKC: HOTP and TOTP keys with their counter, length and time step; other algorithms reported', (t) => {
  const [hotp, totp, ocra] = planPskc(plainFile, owner);
  t.like(hotp!.token, {
    serial: '987654321',
    type: 'hotp',
    otpLen: 8,
    counter: 7,
    username: 'alice',
    realm: 'corp',
    info: { tokenkind: 'hardware' },
  });
  t.is(hotp!.token!.secrets.otpKey, SECRET.toString('hex'));
  t.is(hotp!.token!.description, 'Manufacturer / Issuer');
  t.like(totp!.token, { serial: 'TOTP-0001', type: 'totp', otpLen: 6, counter: 0, info: { timeStep: '60', hashlib: 'sha256' } });
  t.is(hotp!.token!.info.hashlib, 'sha1');
  t.is(ocra!.token, null);
  t.regex(ocra!.problems.join(), /OCRA-1.*not supported/);
});

test('pre-shared key: decrypts with the right key, refuses a wrong key and an altered value', (t) => {
  const [ok] = planPskc(pskFile(), { ...owner, key: PSK });
  t.is(ok!.token!.secrets.otpKey, SECRET.toString('hex'));
  const [altered] = planPskc(pskFile({ tamper: true }), { ...owner, key: PSK });
  t.is(altered!.token, null);
  t.regex(altered!.problems.join(), /MAC of the secret does not match/);
  // A wrong key fails on the MAC key already (bad padding) or, rarely, on the value's MAC: never a wrong seed.
  const wrongKey = crypto.randomBytes(16);
  let refused = false;
  try {
    refused = planPskc(pskFile(), { ...owner, key: wrongKey })[0]!.token === null;
  } catch (err) {
    refused = err instanceof PskcError;
  }
  t.true(refused);
  t.throws(() => planPskc(pskFile(), owner), { instanceOf: PskcError, message: /give --key/ });
});

test('PBKDF2 password: decrypts with the password, refuses without or with another one', (t) => {
  const file = passwordFile('qwerty');
  const [ok] = planPskc(file, { ...owner, password: 'qwerty' });
  t.like(ok!.token, { serial: 'PW-987654321', counter: 3, secrets: { otpKey: SECRET.toString('hex') } });
  t.throws(() => planPskc(file, owner), { instanceOf: PskcError, message: /--password/ });
  let refused = false;
  try {
    refused = planPskc(file, { ...owner, password: 'azerty' })[0]!.token === null;
  } catch (err) {
    refused = err instanceof PskcError;
  }
  t.true(refused);
});

test('hostile files: DOCTYPE (entity expansion) and non-PSKC XML are refused', (t) => {
  t.throws(() => planPskc('<!DOCTYPE x [<!ENTITY a "aaaa">]><KeyContainer/>', owner), { message: /DOCTYPE/ });
  t.throws(() => planPskc('<foo/>', owner), { message: /no KeyContainer/ });
  t.throws(() => planPskc('<KeyContainer><KeyPackage>', owner), { instanceOf: PskcError });
});
