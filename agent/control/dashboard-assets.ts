// The console's page as compiled by bin/build.mjs, which replaces this module's content with the
// page it builds from console/web/ (so only the agent's chunk carries it, never a short command).
// Run from the sources (the tests' in-process servers) there is no page: /console/ says so.
import type { DashboardAssets } from './dashboard.ts';

export const BUILT_DASHBOARD: DashboardAssets | undefined = undefined;
