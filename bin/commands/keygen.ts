/**
 * `meshd keygen --out FILE [--force]`: a new X25519 key pair in a 0600 key
 * file; the public key (the party's id) on stdout. The private key is never
 * printed, so --out is required.
 */

import { MeshError, encodeKey, generateKeyPair, writeKeyFile } from '../../lib/index.ts';
import { contextOf, docsEpilogue, givenOnCommandLine, println } from '../context.ts';
import type { MeshdCommand } from '../context.ts';

export interface KeygenArgs {
  readonly out: string;
  readonly force: boolean;
}

/** Errno code of the error behind a MeshError, if any. */
function causeCode(err: MeshError): string | undefined {
  const cause = err.cause as NodeJS.ErrnoException | undefined;
  return typeof cause?.code === 'string' ? cause.code : undefined;
}

export const keygen: MeshdCommand<KeygenArgs> = {
  command: 'keygen',
  describe: 'Generate a key pair: write it to a 0600 key file and print the public key',
  builder: (y) =>
    y
      .usage('$0 keygen --out FILE [--force]\n\nGenerate an X25519 static key pair for a broker, worker or client. The key file (JSON, mode 0600) holds the private key; the public key, 43 base64url characters, is printed on stdout as the only output line. It is the party\'s id: put it in registries and broker addresses.')
      .option('out', {
        type: 'string',
        requiresArg: true,
        demandOption: 'keygen needs --out FILE: the private key goes to a file, never to stdout',
        describe: 'Key file to write (mode 0600; the directory must exist). Env: MESHD_OUT',
      })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'Replace FILE if it exists (its old private key is lost). Only as a flag: MESHD_FORCE is ignored',
      })
      .check((argv) => (argv.out.length > 0 ? true : '--out must name a file, not an empty string'))
      .example('$0 keygen --out broker.key', 'write broker.key, print its public key')
      .example('KEY=$($0 keygen --out node.key)', 'keep the public key in a shell variable')
      .example('$0 keygen --out broker.key --force', 'replace an existing key file')
      .epilogue(docsEpilogue('meshd-keygen')),
  handler: async (argv) => {
    const ctx = contextOf(argv);
    // Destroying a private key takes an explicit flag, never an environment variable.
    const overwrite = argv.force && givenOnCommandLine(ctx, 'force');
    const keyPair = generateKeyPair();
    try {
      await writeKeyFile(argv.out, keyPair, { overwrite });
    } catch (err) {
      if (err instanceof MeshError && causeCode(err) === 'EEXIST') {
        throw new MeshError('MESH_ERR_KEY_FILE', `key file ${argv.out} already exists; refusing to overwrite it (pass --force to replace it, losing its private key)`, { cause: err });
      }
      throw err;
    }
    println(ctx.io.stdout, encodeKey(keyPair.publicKey));
    println(ctx.io.stderr, `wrote private key to ${argv.out} (mode 0600)`);
  },
};
