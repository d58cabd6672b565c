import type { Permission, ScopeType } from './permissions.js';
import { appError } from '../errors.js';

export interface Grant {
  permission: Permission;
  scopeType: ScopeType;
  scopeId: string;
}

/** Who is calling, and what they may do. Built once per request by authentication. */
export class Principal {
  readonly permissions: ReadonlySet<Permission>;

  constructor(
    readonly actor: string,
    readonly actorType: 'user' | 'agent' | 'service' | 'anonymous' | 'system',
    readonly keyId: string | null,
    readonly name: string,
    readonly grants: readonly Grant[],
    readonly roles: readonly { role_id: string; role: string; scope_type: ScopeType; scope_id: string }[] = [],
  ) {
    this.permissions = new Set(grants.map((g) => g.permission));
  }

  /** True when the permission is held in at least one scope. */
  hasAny(permission: Permission): boolean {
    return this.permissions.has(permission);
  }

  hasGlobal(permission: Permission): boolean {
    return this.grants.some((g) => g.permission === permission && g.scopeType === 'global');
  }

  /** Whether the permission covers one resource that lives under a profile and/or issuer. */
  can(permission: Permission, resource: { profile_id?: string | null; issuer_id?: string | null } = {}): boolean {
    return this.grants.some(
      (g) =>
        g.permission === permission &&
        (g.scopeType === 'global' ||
          (g.scopeType === 'profile' && resource.profile_id === g.scopeId) ||
          (g.scopeType === 'issuer' && resource.issuer_id === g.scopeId)),
    );
  }

  /** Throws 403 unless `can`. Use on single-resource routes after loading the resource. */
  require(permission: Permission, resource?: { profile_id?: string | null; issuer_id?: string | null }): void {
    if (!this.can(permission, resource)) throw appError('FORBIDDEN', `Permission ${permission} is not granted for this resource`);
  }

  /**
   * For list queries: null when the permission is global, else the profile and
   * issuer ids the caller may see (a list filter).
   */
  scopeFilter(permission: Permission): { profileIds: string[]; issuerIds: string[] } | null {
    if (this.hasGlobal(permission)) return null;
    const mine = this.grants.filter((g) => g.permission === permission);
    return {
      profileIds: mine.filter((g) => g.scopeType === 'profile').map((g) => g.scopeId),
      issuerIds: mine.filter((g) => g.scopeType === 'issuer').map((g) => g.scopeId),
    };
  }

  effectivePermissions(): Permission[] {
    return [...this.permissions].sort();
  }
}
