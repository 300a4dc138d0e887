// Replacing a small file so that a crash leaves either the old or the new content, never a mix:
// a temp file beside it, fsync, rename over it, fsync of the directory. Only root reads it (0600).
import fsp from 'node:fs/promises';
import path from 'node:path';

export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp`;
  const fh = await fsp.open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, file);
  const dir = await fsp.open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
