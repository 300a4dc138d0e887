// The installer: what it takes to put Tandem on a pair (config and script templates; install,
// clone and uninstall come later). It must never overwrite an existing node's files silently.
export { renderConfig } from './config-template.ts';
export type { ConfigSpec, NodeAddressesSpec } from './config-template.ts';
export { renderDemoScripts } from './script-templates.ts';
export type { DemoScriptSpec } from './script-templates.ts';
