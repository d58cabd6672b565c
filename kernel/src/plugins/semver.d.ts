// The two functions of `semver` the catalog uses. A local declaration keeps the
// kernel building without @types/semver; remove it if that package is added.
declare module 'semver' {
  export function validRange(range: string, options?: { loose?: boolean; includePrerelease?: boolean }): string | null;
  export function satisfies(version: string, range: string, options?: { loose?: boolean; includePrerelease?: boolean }): boolean;
}
