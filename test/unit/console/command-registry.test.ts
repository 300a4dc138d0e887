// The registry is what `tandem help` lists without loading any command: it must say what each
// command's own module says.
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../../console/command-registry.ts';

describe('command registry', () => {
  it('lists each command once, under the name and summary its module gives', async () => {
    expect(new Set(COMMANDS.map((c) => c.name)).size).toBe(COMMANDS.length);
    for (const entry of COMMANDS) {
      const command = await entry.load();
      expect(command.name).toBe(entry.name);
      expect(command.summary).toBe(entry.summary);
      expect(command.help).toMatch(new RegExp(`^Usage: tandem ${entry.name}`));
    }
  });
});
