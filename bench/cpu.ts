/** CPU accounting shared by the benchmarks (Linux /proc): who else used the machine during a measurement. */
import fs from 'node:fs';

/** Busy CPU time of the whole machine in ms (/proc/stat: user nice system irq softirq steal; USER_HZ 100), or null off Linux. */
export function machineBusyMs(): number | null {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    return ((user! + nice! + system! + irq! + softirq! + steal!) * 1000) / 100;
  } catch {
    return null;
  }
}

/** CPU time (user + system, ms) of a process from /proc/<pid>/stat, or null. */
export function processCpuMs(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    return ((f[11]! + f[12]!) * 1000) / 100;
  } catch {
    return null;
  }
}

/** CPU time of this process in ms. */
export const ownCpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** A window over which CPU used by processes other than the benchmark's own is measured (cores, averaged). */
export function foreignCpu(): { end(childCpuMs: number): number | null } {
  const busy0 = machineBusyMs();
  const own0 = ownCpuMs();
  const t0 = performance.now();
  return {
    end(childCpuMs) {
      const busy1 = machineBusyMs();
      if (busy0 === null || busy1 === null) return null;
      return Math.max(0, (busy1 - busy0 - (ownCpuMs() - own0) - childCpuMs) / (performance.now() - t0));
    },
  };
}
