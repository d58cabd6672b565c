import type { Json } from './contract.js';

type Settings = Readonly<Record<string, Json>>;

/**
 * Protocol endpoints (EST, SCEP...) serve a default path and one path per configured
 * label (`config.labels[label]`), where a label's own setting wins over the endpoint's.
 * Returns the lookup for one label (null: the default path), or undefined when the
 * label is not configured, so the caller answers 404 rather than falling back.
 */
export function labelSettings(config: Settings, label: string | null): ((key: string) => Json | undefined) | undefined {
  const labels = (config.labels ?? {}) as Record<string, Settings>;
  if (label !== null && !Object.hasOwn(labels, label)) return undefined;
  const own: Settings = label === null ? {} : labels[label];
  return (key) => (own[key] !== undefined ? own[key] : config[key]);
}
