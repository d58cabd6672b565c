import { request } from './client';
import type { JsonSchema } from '../forms/schema-utils';

let doc: Promise<Record<string, any>> | null = null;

/** The kernel's own OpenAPI document: create forms for plain resources render from its request schemas. */
export function openapi(): Promise<Record<string, any>> {
  doc ??= request<Record<string, any>>('/api/v1/openapi.json', { key: null }).catch((err) => {
    doc = null;
    throw err;
  });
  return doc;
}

export async function requestSchema(path: string, method: 'post' | 'put' = 'post'): Promise<JsonSchema> {
  const d = await openapi();
  const oaPath = path.replace(/:([a-z_]+)/g, '{$1}');
  const schema = d.paths?.[oaPath]?.[method]?.requestBody?.content?.['application/json']?.schema as JsonSchema | undefined;
  if (!schema) throw new Error(`The API has no ${method.toUpperCase()} ${path} body schema`);
  return schema;
}
