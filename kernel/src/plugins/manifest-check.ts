import type { ErrorObject, ValidateFunction } from 'ajv';
import { satisfies, validRange } from 'semver';
import { MANIFEST_SCHEMA, PLUGIN_API_VERSION, type PluginManifest } from '@certctl/sdk';
import { configSchemaCommandProblem, manifestExecProblem } from '@certctl/sdk/policy';
import { ajv } from '../http/validation.js';

let validateManifestSchema: ValidateFunction | null = null;

/** A failed check still carries the manifest when only the engine range refused it (so its kind can be shown). */
export type ManifestCheck = { ok: true; manifest: PluginManifest } | { ok: false; reason: string; manifest?: PluginManifest };

function describe(e: ErrorObject): string {
  const at = e.instancePath || '(manifest)';
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required': return `${e.instancePath}/${String(p.missingProperty)} is required`;
    case 'additionalProperties': return `${e.instancePath}/${String(p.additionalProperty)} is not a manifest field`;
    case 'enum': return `${at} must be one of ${(p.allowedValues as unknown[]).join(', ')}`;
    case 'const': return `${at} must be "${String(p.allowedValue)}"`;
    default: return `${at} ${e.message ?? e.keyword}`;
  }
}

/**
 * Checks the `certctl` block of a plugin's package.json against the SDK's
 * manifest schema and the running kernel's version. Nothing is loaded or run.
 */
export function checkManifest(raw: unknown, kernelVersion: string): ManifestCheck {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return { ok: false, reason: 'the certctl block of package.json must be an object' };
  const apiVersion = (raw as { apiVersion?: unknown }).apiVersion;
  if (apiVersion !== undefined && apiVersion !== PLUGIN_API_VERSION) {
    return { ok: false, reason: `apiVersion ${JSON.stringify(apiVersion)} is not supported (this kernel speaks ${PLUGIN_API_VERSION})` };
  }
  validateManifestSchema ??= ajv.compile(MANIFEST_SCHEMA as unknown as Record<string, unknown>);
  // Validate a copy: the manifest schema sets no defaults, but the kernel's ajv may.
  const manifest = structuredClone(raw) as PluginManifest;
  if (!validateManifestSchema(manifest)) {
    // `if`/`then` failures repeat the `required` error they wrap.
    const problems = (validateManifestSchema.errors ?? []).filter((e) => e.keyword !== 'if').map(describe);
    return { ok: false, reason: `invalid manifest: ${[...new Set(problems)].slice(0, 10).join('; ')}` };
  }
  const exec = manifestExecProblem(manifest.capabilities?.exec) ?? configSchemaCommandProblem(manifest.configSchema);
  if (exec) return { ok: false, reason: `invalid manifest: ${exec}` };
  const range = manifest.engines.certctl;
  if (!validRange(range)) return { ok: false, reason: `engines.certctl ${JSON.stringify(range)} is not a semver range`, manifest };
  if (!satisfies(kernelVersion, range, { includePrerelease: true })) {
    return { ok: false, reason: `requires certctl ${range}, but this kernel is ${kernelVersion}`, manifest };
  }
  return { ok: true, manifest };
}
