// The node's scripts as the role controller and the application monitor run them, counted for
// the metrics and reported as events: every failed start or stop, and every change of the check
// script's verdict (a check that fails every few seconds is one event, not one per run).
import type { ScriptContext, ScriptName, ScriptResult } from '../scripts/index.ts';
import type { ScriptStats } from './metrics.ts';
import type { EventDraft } from './event.ts';

export interface ScriptRunLike {
  run(name: ScriptName, ctx: ScriptContext): Promise<ScriptResult>;
}

export class MeteredScripts implements ScriptRunLike {
  readonly stats = new Map<string, ScriptStats>();
  private checkOk: boolean | undefined;

  constructor(
    private readonly inner: ScriptRunLike,
    private readonly emit: (d: EventDraft) => void,
  ) {}

  async run(name: ScriptName, ctx: ScriptContext): Promise<ScriptResult> {
    const r = await this.inner.run(name, ctx);
    const st = this.stats.get(name) ?? { ok: 0, failed: 0, durationMsSum: 0 };
    if (r.ok) st.ok += 1;
    else st.failed += 1;
    st.durationMsSum += r.durationMs;
    this.stats.set(name, st);
    const why = r.error ?? (r.timedOut ? `timed out after ${r.durationMs} ms` : r.signal !== null ? `killed by ${r.signal}` : `exit code ${r.exitCode}`);
    const details = { script: name, exitCode: r.exitCode, timedOut: r.timedOut, durationMs: r.durationMs };
    if (name === 'check') {
      const was = this.checkOk;
      this.checkOk = r.ok;
      if (was !== undefined && was !== r.ok) {
        this.emit({ kind: 'script', from: was ? 'ok' : 'failed', to: r.ok ? 'ok' : 'failed', reason: r.ok ? 'the check script passes again' : `the check script failed: ${why}`, trigger: 'automatic', details });
      }
    } else if (!r.ok) {
      this.emit({ kind: 'script', from: 'running', to: 'failed', reason: `the ${name} script failed (${ctx.reason}): ${why}`, trigger: 'automatic', details });
    }
    return r;
  }
}
