/** The audit row of a request before (or without) an outcome: what the request named. */
import type { AppContext } from './app.ts';
import type { AuditEntry } from './store/audit_repo.ts';

export function requestAudit(ctx: AppContext): Omit<AuditEntry, 'time' | 'client'> {
  const params = ctx.state.params as AppContext['state']['params'] | undefined; // absent when the body could not be parsed
  const serial = params?.get('serial');
  return {
    action: `${ctx.method} ${ctx.path}`, success: false, outcome: 'ERROR',
    username: params?.get('user') ?? null, realm: params?.get('realm') ?? null, serials: serial ? [serial] : [],
  };
}
