import type { Json } from '@certctl/sdk';
import { checkPath, DeployConfigError } from '@certctl/sdk/deploy';

export interface TraefikFiles {
  certFile: string;
  keyFile: string;
  /** The dynamic configuration file listing the pair under tls.certificates; null when dynamic_config is none. */
  dynamicFile: { path: string; format: 'yaml' | 'toml' } | null;
}

const FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$/;

/** A plain file name inside cert_dir: no separators, so nothing can climb out of the directory. */
function fileName(value: Json | undefined, what: string, fallback: string): string {
  const name = value === undefined || value === null ? fallback : value;
  if (typeof name !== 'string' || !FILE_NAME.test(name)) throw new DeployConfigError(`${what} must be a plain file name (letters, digits, . _ -), not ${JSON.stringify(name)}`);
  return name;
}

/** The files in cert_dir this config names; throws DeployConfigError when unusable. */
export function traefikFiles(c: Readonly<Record<string, Json>>): TraefikFiles {
  const dir = checkPath(c.cert_dir, 'cert_dir');
  const format = c.dynamic_config ?? 'yaml';
  if (format !== 'yaml' && format !== 'toml' && format !== 'none') throw new DeployConfigError('dynamic_config must be yaml, toml or none');
  const names = [fileName(c.cert_filename, 'cert_filename', 'cert.pem'), fileName(c.key_filename, 'key_filename', 'key.pem')];
  if (format !== 'none') names.push(fileName(c.dynamic_config_filename, 'dynamic_config_filename', `certctl-tls.${format === 'yaml' ? 'yml' : 'toml'}`));
  if (new Set(names).size !== names.length) throw new DeployConfigError('cert_filename, key_filename and dynamic_config_filename must differ');
  const [certFile, keyFile, dynamicFile] = names.map((n) => checkPath(`${dir}/${n}`, 'file path'));
  return { certFile, keyFile, dynamicFile: format === 'none' ? null : { path: dynamicFile, format } };
}

/** null when the file names are usable, else why not (for defineFileTarget's checkConfig). */
export function traefikConfigProblem(c: Readonly<Record<string, Json>>): string | null {
  try {
    traefikFiles(c);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}
