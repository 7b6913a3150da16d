// Parses each AsyncAPI document named on the command line with the official parser and fails
// on any error it reports (warnings and hints are printed).
import { Parser } from '@asyncapi/parser';
import fs from 'fs';

const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(fs.readFileSync(file, 'utf8'));
  for (const d of diagnostics) {
    const level = ['error', 'warning', 'info', 'hint'][d.severity];
    console.log(`${file}: ${level}: ${d.message} at /${d.path.join('/')}`);
  }
  const errors = diagnostics.filter((d) => d.severity === 0);
  if (!document || errors.length) {
    failed = true;
  } else {
    console.log(`${file}: valid AsyncAPI ${document.version()}: ${document.channels().length} channels, ${document.messages().length} messages`);
  }
}
process.exit(failed ? 1 : 0);
