import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pino, { type Logger } from 'pino';

/** The fixture plugin packages: three valid ones and one per way a manifest can be refused. */
export const FIXTURE_PLUGINS_DIR = fileURLToPath(new URL('../fixtures/plugins/', import.meta.url));

/** A pino logger at trace level whose every line is kept, for asserting on log output. */
export function capturingLogger(): { log: Logger; lines: () => string[]; text: () => string } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  const log = pino({ level: 'trace' }, sink);
  const text = () => chunks.join('');
  return { log, text, lines: () => text().split('\n').filter(Boolean) };
}
