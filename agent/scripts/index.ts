// Scripts: the node's start, stop and check scripts, run with a timeout in their own process
// group, their output in the log; and application monitoring, which restarts the application
// locally and then asks for a switchover. Nothing here decides roles: that is failover's job.
// It must never run start beside stop, nor start anything once told to stop.
export { ScriptRunner, KILL_GRACE_MS, OUTPUT_DRAIN_MS, SCRIPT_HISTORY_LENGTH } from './script-runner.ts';
export type { ScriptName, ScriptContext, ScriptResult, ScriptRun, ScriptRunnerOptions } from './script-runner.ts';
export { OutputLines, LineBudget, MAX_LINE_CHARS, MAX_LINES_PER_RUN } from './output-lines.ts';
export { signalGroup, groupAlive, processAlive } from './process-group.ts';
export { stepRestartPolicy, initialRestartState, restartsInWindow } from './restart-policy.ts';
export type { MonitorDecision, MonitorPhase, MonitorInput, RestartLimits, RestartPolicyState, RestartStep } from './restart-policy.ts';
export { AppMonitor } from './app-monitor.ts';
export type { AppMonitorOptions, AppMonitorStatus, AppMonitorState, AppMonitorStateChange, AppMonitorEvents } from './app-monitor.ts';
export { readScriptsLog, parseScriptsLog, overlappingStarts } from './scripts-log.ts';
export type { ScriptsLogEntry } from './scripts-log.ts';
