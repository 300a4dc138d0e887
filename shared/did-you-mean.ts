// "Did you mean": the closest known word to a mistyped one (a command, a flag), or nothing when
// no word is close enough to be a plausible typo. Distance is optimal string alignment
// (Levenshtein plus swapping two neighbours, the commonest typo: `stauts`).

export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate closest to `input`: within one edit for short words, a third of the length for
 * longer ones; or a candidate that `input` starts (`--jso` → `--json`). Ties go to the first.
 */
export function didYouMean(input: string, candidates: readonly string[]): string | undefined {
  const low = input.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const dist = editDistance(low, c.toLowerCase());
    if (dist < bestDistance) {
      best = c;
      bestDistance = dist;
    }
  }
  if (best !== undefined && bestDistance <= Math.max(1, Math.floor(best.length / 3))) return best;
  if (low.length >= 2) return candidates.find((c) => c.toLowerCase().startsWith(low));
  return undefined;
}
