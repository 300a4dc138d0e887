// Writes a planned node to disk through the recorder, so that everything it creates is in the
// install manifest, and so that a failure half way leaves the tree as it was.
import fs from 'node:fs';
import { TandemError } from '../shared/errors.ts';
import { writePairKey } from '../shared/pair-key.ts';
import { TANDEM_VERSION } from '../shared/version.ts';
import { InstallRecorder, readManifest, sha256, writeManifest, type InstallManifest } from './install-manifest.ts';
import type { NodePlan } from './install-plan.ts';

/** Refuses before anything is written when a node is installed under this root already. */
export function refuseExistingInstall(plan: NodePlan): void {
  const L = plan.input.layout;
  const m = readManifest(L.path('manifest'));
  if (m !== undefined || fs.existsSync(plan.configPath)) {
    throw new TandemError({
      code: 'TANDEM_ERR_INSTALL_FAILED',
      op: `tandem install ${plan.input.role === 'active' ? 'primary' : 'secondary'}`,
      reason: m !== undefined ? `node ${m.node} of pair ${m.pair} is installed here already (${L.path('manifest')})` : `${plan.configPath} exists already`,
      hint: `tandem uninstall${L.underRoot ? ` --root ${L.root}` : ''} removes it first; nothing was changed`,
    });
  }
}

export function writeNode(plan: NodePlan, key: Buffer, role: InstallManifest['role'], extra: { modules: unknown[]; fence: string | undefined }): InstallManifest {
  const L = plan.input.layout;
  const rec = new InstallRecorder();
  try {
    for (const d of plan.dirs) rec.mkdirp(d.path, d.mode, { ...(d.owned === true ? { owned: true } : {}), ...(d.keep === true ? { keep: true } : {}) });
    // The key is written by the function every reader trusts (0600, hex), then recorded.
    const keyFile = L.path('keyFile');
    if (fs.existsSync(keyFile)) throw new TandemError({ code: 'TANDEM_ERR_INSTALL_FAILED', op: `write ${keyFile}`, reason: 'the file exists already', hint: 'tandem uninstall removes an earlier install; nothing was changed' });
    writePairKey(keyFile, key);
    rec.entries.push({ kind: 'file', path: keyFile, mode: 0o600, sha256: sha256(`${key.toString('hex')}\n`) });
    for (const f of plan.files) rec.writeFile(f.path, f.content, f.mode);
    for (const l of plan.links) rec.symlink(l.path, l.target);
    const manifest: InstallManifest = {
      format: 1,
      tandem: TANDEM_VERSION,
      pair: plan.input.pair,
      node: plan.input.node,
      role,
      root: L.root,
      createdAt: new Date().toISOString(),
      modules: extra.modules,
      ...(extra.fence === undefined ? {} : { fence: extra.fence }),
      entries: rec.entries,
    };
    writeManifest(L.path('manifest'), manifest);
    return manifest;
  } catch (err) {
    rec.rollback();
    throw err;
  }
}
