// Whether this deployment allows test clocks (a setting; production never does).
import { testClocksDisabled } from '../domain/errors.ts';

/** Whether this deployment allows test clocks. */
export interface TestClockPolicy {
  /** True when test clocks may be created and advanced. */
  enabled: boolean;
}

/** Throws FAILED_PRECONDITION TEST_CLOCKS_DISABLED unless the deployment allows test clocks. */
export function assertTestClocksEnabled(policy: TestClockPolicy): void {
  if (!policy.enabled) throw testClocksDisabled();
}
