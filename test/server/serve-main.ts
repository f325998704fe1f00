// Stands in for src/cli/main.ts until it registers `serve`: the same program, exit and error
// handling, with only the serve command. serve.test.ts runs bin/parallm.js once main.ts has it.

import { Command } from 'commander';
import { registerServe } from '../../src/cli/serve.ts';

const program = new Command().name('parallm');
registerServe(program);
await program.parseAsync(process.argv);
process.exit(0);
