// What an application module gives the generated scripts: three shell function bodies (start,
// stop, check) that compose-scripts.ts wraps and orders, and the commands they need on the node.
// Every value from the answers reaches the shell through `shq` only: the answers are validated,
// and quoting is the second line.

export interface ModuleScript {
  /** One line for the scripts' header and the install summary: "virtual IP 192.0.2.10/24". */
  title: string;
  /** Idempotent: succeeds when the application already runs / the identity is already held. */
  start: string;
  /** Idempotent: succeeds when nothing runs. */
  stop: string;
  /** Exit status 0 when healthy. */
  check: string;
  /** Shell functions the bodies call, defined once at the top of each script. */
  helpers?: string;
  /** Programs the bodies call, checked on the node by `tandem check`. */
  needs: string[];
}

/** What a module may know of the node it is generated for. */
export interface ModuleContext {
  /** This node's name (a DNS module picks its address by it). */
  node: string;
  /** The module's position, 1-based: its functions and files are named after it. */
  index: number;
  /** Directory for pid and log files of what the scripts start (under the install root). */
  runDir: string;
  /** The Node.js binary the scripts use for HTTP checks (no curl needed). */
  nodeBin: string;
  /** A system path (as in the answers) as it lies under the install root. */
  under: (systemPath: string) => string;
}

/** Single-quoted for sh: safe for any string without NUL. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Runs an operator's command line with sh, as written in the answers. */
export function shellCommand(cmd: string): string {
  return `/bin/sh -c ${shq(cmd)}`;
}

/**
 * An HTTP health check with the Node.js binary: healthy on a status below 400 within 3 s. The
 * exit code starts at 1: Node 20's fetch can leave its promise unsettled when the connection is
 * reset, and an empty event loop would otherwise exit 0, healthy.
 */
export function httpCheck(nodeBin: string, url: string): string {
  return `${shq(nodeBin)} -e "process.exitCode = 1; fetch(process.argv[1], { signal: AbortSignal.timeout(3000) }).then((r) => process.exit(r.status < 400 ? 0 : 1), () => process.exit(1))" ${shq(url)}`;
}
