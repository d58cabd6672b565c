/** Helpers that adapt JSON schemas (plugin configs, API bodies) for the form library. */

export type JsonSchema = Record<string, unknown>;

export function isSecretSchema(s: unknown): boolean {
  if (!s || typeof s !== 'object') return false;
  const o = s as { writeOnly?: unknown; 'x-secret'?: unknown };
  return o.writeOnly === true || o['x-secret'] === true;
}

/**
 * A copy the form library can render: `type: [T, "null"]` becomes `T` (an empty
 * field is simply left out), and the marker properties that are not JSON Schema
 * keywords stay, so renderers can read them.
 */
export function formSchema(schema: JsonSchema): JsonSchema {
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (!node || typeof node !== 'object') return node;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
      if (k === 'type' && Array.isArray(v)) {
        const types = v.filter((t) => t !== 'null');
        out[k] = types.length === 1 ? types[0] : types;
      } else out[k] = walk(v);
    }
    return out;
  };
  return walk(schema) as JsonSchema;
}

/** The schema without some top-level fields (neither rendered nor validated: the caller supplies them). */
export function withoutFields(schema: JsonSchema, omit: string[]): JsonSchema {
  if (!omit.length) return schema;
  const props = { ...((schema.properties ?? {}) as Record<string, unknown>) };
  for (const f of omit) delete props[f];
  const required = Array.isArray(schema.required) ? (schema.required as string[]).filter((r) => !omit.includes(r)) : undefined;
  return { ...schema, properties: props, ...(required ? { required } : {}) };
}

/** Top-level defaults of non-secret fields, to start a create form from. */
export function defaultsOf(schema: JsonSchema): Record<string, unknown> {
  const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const out: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(props)) {
    if (!isSecretSchema(s) && s.default !== undefined) out[name] = structuredClone(s.default);
  }
  return out;
}

interface UiElement {
  type: string;
  scope?: string;
  label?: string;
  elements?: UiElement[];
  options?: Record<string, unknown>;
}

/**
 * A JSON Forms UI schema: a vertical layout of the schema's properties, in the
 * plugin's `ui:order` when it gives one (the manifest format), leaving out `omit`.
 */
export function uiSchemaFor(schema: JsonSchema, hint: Record<string, unknown> | null = null, omit: string[] = []): UiElement {
  if (hint && typeof hint.type === 'string' && (hint.type.endsWith('Layout') || hint.type === 'Control')) return hint as unknown as UiElement;
  const props = Object.keys((schema.properties ?? {}) as Record<string, unknown>).filter((p) => !omit.includes(p));
  const order = Array.isArray(hint?.['ui:order']) ? (hint!['ui:order'] as string[]) : [];
  const ordered = [...order.filter((p) => props.includes(p)), ...props.filter((p) => !order.includes(p))];
  return { type: 'VerticalLayout', elements: ordered.map((p) => ({ type: 'Control', scope: `#/properties/${p}` })) };
}

/** Drops empty strings and empty objects the form leaves behind, so optional fields are omitted, not blank. */
export function pruneEmpty(value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (v === '' || v === undefined || v === null) continue;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const inner = pruneEmpty(v as Record<string, unknown>);
      if (Object.keys(inner).length) out[k] = inner;
    } else out[k] = v;
  }
  return out;
}

/** `#/properties/a/properties/b` -> `a.b` */
export function scopeToPath(id: string): string {
  return id.replace(/-input$/, '').replace(/^#\/properties\//, '').replace(/\/properties\//g, '.').replace(/[^a-zA-Z0-9_.-]/g, '_');
}
