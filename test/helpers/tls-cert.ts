// A self-signed certificate made at test time (no key material in the repository).
import { generate } from 'selfsigned'

export interface TestCert {
  /** PEM private key. */
  key: string
  /** PEM certificate; also the `ca` a client must trust, since it is self-signed. */
  cert: string
}

let pending: Promise<TestCert> | undefined

/**
 * One self-signed certificate per process for CN `localhost`, valid for the names `localhost`,
 * `127.0.0.1` and `::1`. An EC key keeps generation to a few milliseconds.
 */
export function testCert (): Promise<TestCert> {
  pending ??= generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }],
      },
    ],
  }).then((pems) => ({ key: pems.private, cert: pems.cert }))
  return pending
}
