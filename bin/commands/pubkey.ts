/**
 * `meshd pubkey FILE`: the public key of a key file, as one line. The file
 * must be readable by its owner only (mode 0600 or stricter).
 */

import { encodeKey, readKeyFile } from '../../lib/index.ts';
import { contextOf, docsEpilogue, println } from '../context.ts';
import type { MeshdCommand } from '../context.ts';

export interface PubkeyArgs {
  readonly file: string;
}

export const pubkey: MeshdCommand<PubkeyArgs> = {
  command: 'pubkey <file>',
  describe: 'Print the public key of a key file',
  builder: (y) =>
    y
      .usage('$0 pubkey FILE\n\nRead a key file written by `meshd keygen` and print its public key (43 base64url characters) as the only stdout line. The file is checked as the broker and nodes check it: it must be a regular file readable by its owner only, with a private key that matches its public key.')
      .positional('file', {
        type: 'string',
        demandOption: true,
        describe: 'Key file to read (must not be readable by group or others)',
      })
      .example('$0 pubkey broker.key', 'print the public key of broker.key')
      .example('BROKER_KEY=$($0 pubkey broker.key)', 'keep it in a shell variable')
      .epilogue(docsEpilogue('meshd-pubkey')),
  handler: async (argv) => {
    const { io } = contextOf(argv);
    const keyPair = await readKeyFile(argv.file);
    println(io.stdout, encodeKey(keyPair.publicKey));
  },
};
