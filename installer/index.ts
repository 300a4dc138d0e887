// The installer: checks a server (tandem check), installs the primary and the secondary of a pair
// from answers (a config, the pair key, scripts composed from application modules, a systemd
// unit, a sealed clone pack), and uninstalls exactly what it installed. It must never overwrite a
// file silently, never write outside its root, and never remove protected data.
export { renderConfig } from './config-template.ts';
export type { ConfigSpec, NodeAddressesSpec } from './config-template.ts';
export { renderDemoScripts } from './script-templates.ts';
export type { DemoScriptSpec } from './script-templates.ts';
export { InstallLayout, SYSTEM_PATHS, UNIT_NAME } from './install-layout.ts';
export { parsePrimaryAnswers, parseSecondaryAnswers, readAnswersDocument, primaryAnswersSchema, secondaryAnswersSchema } from './answers.ts';
export type { PrimaryAnswers, SecondaryAnswers } from './answers.ts';
export { installPrimary } from './install-primary.ts';
export { installSecondary } from './install-secondary.ts';
export { uninstall } from './uninstall.ts';
export { runPreflight, formatChecks } from './preflight.ts';
export type { CheckResult, CheckLevel } from './preflight.ts';
export { readManifest } from './install-manifest.ts';
export type { InstallIo } from './install-io.ts';
export { controlUrl } from './install-io.ts';
export { lineAsker, askPrimaryAnswers, askPackCode } from './prompts.ts';
export { MODULE_SCHEMA, MODULE_KINDS, renderModule } from './modules/index.ts';
export type { ModuleSpec } from './modules/index.ts';
export { composeScripts } from './compose-scripts.ts';
export { openPack, sealPack, readPackHeader, generatePackCode, normalizePackCode } from './clone-pack.ts';
