import type { Knex } from 'knex';
import { authenticateApiKey, bearerToken } from '../../auth/api-keys.js';
import { ALL_PERMISSIONS } from '../../auth/permissions.js';
import { Principal } from '../../auth/principal.js';
import { appError } from '../../errors.js';
import type { Ctx } from '../route.js';
import { RecentKeys } from './rate-limit.js';

/** With CERTCTL_AUTH_TYPE=none every caller is this principal (demos only). */
export const ANONYMOUS_ADMIN = new Principal('anonymous', 'anonymous', null, 'anonymous (auth disabled)',
  ALL_PERMISSIONS.map((permission) => ({ permission, scopeType: 'global' as const, scopeId: '' })));

/**
 * Attaches the caller's principal when a valid key is presented. A presented but
 * invalid key is a 401 even on public routes, so a typo is never silently anonymous.
 * Whether a route needs a principal at all is the router's decision.
 */
export function authenticate(knex: Knex, authType: 'api-key' | 'none', recentKeys: RecentKeys, ownAuthorization: (method: string, path: string) => boolean = () => false) {
  return async (ctx: Ctx, next: () => Promise<void>): Promise<void> => {
    if (authType === 'none') {
      ctx.state.principal = ANONYMOUS_ADMIN;
      return next();
    }
    const header = ctx.get('authorization');
    // A route that checks its own credential (a bootstrap token) gets the header untouched.
    if (header && !ownAuthorization(ctx.method, ctx.path)) {
      const token = bearerToken(header);
      const principal = token ? await authenticateApiKey(knex, token) : null;
      if (!principal) throw appError('UNAUTHENTICATED', token ? 'Invalid, expired or revoked API key' : 'Authorization header must be "Bearer <key>"');
      ctx.state.principal = principal;
      recentKeys.remember(RecentKeys.digest(header));
    }
    await next();
  };
}
