/** Runs `pushgate device …` in-process (runCli) against a test server, with a store file in a temp dir. */
import { Readable } from 'node:stream';
import { runCli } from '../../cli/main.ts';
import type { TestWorld } from './test_app.ts';
import { policy } from './kit.ts';

export interface DeviceRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `pushgate device <args> --store <store>`; `signal` ends a `listen`. */
export async function deviceCli(store: string, args: readonly string[], signal?: AbortSignal): Promise<DeviceRun> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(['device', ...args, '--store', store], {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    stdin: Readable.from([]),
    env: {},
    ...(signal ? { signal } : {}),
  });
  return { code, stdout, stderr };
}

/**
 * Points the push tokens' registration URL at the world's own HTTP server (the test config's public URL is not
 * served) and offers the device protocol v2, plus `extra` enrollment/authentication actions.
 */
export function offerDeviceProtocol(w: TestWorld, extra: Array<Record<string, unknown>> = []): void {
  w.deps.reloadPolicies({
    ...w.deps.config,
    policies: [
      ...w.deps.config.policies,
      policy('device-v2', 'enrollment', { edupush_device_protocol: true, edupush_registration_url: `${w.url}/ttype/edupush` }),
      ...extra,
    ],
  });
}
