/** The audit row of a request before (or without) an outcome: what the request named. */
import type { AppContext } from './app.ts';
import type { AuditEntry } from './store/audit_repo.ts';
import { identifierParam } from './params.ts';

export function requestAudit(ctx: AppContext): Omit<AuditEntry, 'time' | 'client'> {
  const params = ctx.state.params as AppContext['state']['params'] | undefined; // absent when the body could not be parsed
  const serial = params && identifierParam(params, 'serial');
  return {
    action: `${ctx.method} ${ctx.path}`,
    success: false,
    outcome: 'ERROR',
    username: (params && identifierParam(params, 'user')) ?? null,
    realm: (params && identifierParam(params, 'realm')) ?? null,
    serials: serial ? [serial] : [],
  };
}
