import { UsageError } from './command';

/** Reads a password without echoing it, for a person typing at a terminal. */
function promptHidden(stdin: NodeJS.ReadStream, stderr: NodeJS.WritableStream, prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    stderr.write(prompt);
    let value = '';
    const finish = (error?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      stderr.write('\n');
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (char === '\r' || char === '\n' || char === '\u0004') return finish();
        if (char === '\u0003') return finish(new UsageError('cancelled'));
        if (char === '\u007f' || char === '\b') value = value.slice(0, -1);
        else value += char;
      }
    };
    stdin.setRawMode(true);
    stdin.setEncoding('utf8');
    stdin.on('data', onData);
    stdin.resume();
  });
}

/** The first line of a piped standard input (`printf '%s\n' "$PW" | npm run cli -- ...`). */
async function readFirstLine(stdin: NodeJS.ReadStream): Promise<string> {
  let text = '';
  stdin.setEncoding('utf8');
  for await (const chunk of stdin) {
    text += chunk as string;
    if (text.includes('\n')) break;
  }
  return text.split(/\r?\n/, 1)[0] ?? '';
}

export async function readPassword(stdin: NodeJS.ReadStream, stderr: NodeJS.WritableStream): Promise<string> {
  if (!stdin.isTTY) {
    const password = await readFirstLine(stdin);
    if (password === '') throw new UsageError('no password given: pass --password or write it to standard input');
    return password;
  }
  const password = await promptHidden(stdin, stderr, 'Password: ');
  const repeated = await promptHidden(stdin, stderr, 'Repeat password: ');
  if (password !== repeated) throw new UsageError('the two passwords differ');
  return password;
}
