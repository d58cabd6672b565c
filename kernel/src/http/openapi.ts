import { sortKeysFor, MAX_PAGE_SIZE } from './list-query.js';
import type { JsonSchema, RouteDef } from './route.js';

const ERROR_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string' },
        message: { type: 'string' },
        details: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } } },
      },
    },
  },
};

const errorRef = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });

function listParameters(route: RouteDef): unknown[] {
  const spec = route.list!;
  const params: unknown[] = [
    { name: 'page', in: 'query', schema: { type: 'integer', minimum: 1 }, description: 'Page number (page mode)' },
    { name: 'per_page', in: 'query', schema: { type: 'integer', minimum: 1, maximum: MAX_PAGE_SIZE }, description: 'Page size (page mode)' },
    { name: 'cursor', in: 'query', schema: { type: 'string' }, description: 'Opaque cursor from next_cursor (cursor mode)' },
    { name: 'page_size', in: 'query', schema: { type: 'integer', minimum: 1, maximum: MAX_PAGE_SIZE }, description: 'Page size (cursor mode)' },
    { name: 'fields', in: 'query', schema: { type: 'string' }, description: `Comma-separated subset of: ${spec.fields.join(', ')}` },
    { name: 'sort', in: 'query', schema: { type: 'string', enum: sortKeysFor(spec).flatMap((k) => [k, `-${k}`]) }, description: 'Sort field; prefix - for descending' },
  ];
  for (const [name, f] of Object.entries(spec.filters ?? {})) {
    params.push({ name, in: 'query', description: f.description, schema: f.enum ? { type: 'string', enum: f.enum } : { type: 'string' } });
  }
  for (const [name, t] of Object.entries(spec.timeFilters ?? {})) {
    params.push({ name, in: 'query', description: `${t.column} ${t.op} value (RFC 3339)`, schema: { type: 'string', format: 'date-time' } });
  }
  for (const [name, e] of Object.entries(spec.extra ?? {})) {
    params.push({ name, in: 'query', description: e.description, schema: e.enum ? { type: 'string', enum: e.enum } : { type: 'string' } });
  }
  return params;
}

/** The OpenAPI 3.1 document, derived from the same route table and schemas the server validates with. */
export function buildOpenApi(routes: RouteDef[], info: { version: string; serverUrl: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const oaPath = r.path.replace(/:([A-Za-z_]+)/g, '{$1}');
    const pathParams = [...r.path.matchAll(/:([A-Za-z_]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const queryParams = r.list
      ? listParameters(r)
      : Object.entries(r.query ?? {}).map(([name, q]) => ({ name, in: 'query', description: q.description, schema: q.enum ? { type: 'string', enum: q.enum } : { type: 'string' } }));
    const status = String(r.response?.status ?? 200);
    const okContent = r.response?.contentType
      ? { [r.response.contentType]: { schema: { type: 'string' } } }
      : { 'application/json': { schema: r.list ? listEnvelope(r.response?.schema) : (r.response?.schema ?? { type: 'object' }) } };
    const responses: Record<string, unknown> = {
      [status]: status === '204' ? { description: 'No content' } : { description: r.response?.description ?? 'OK', content: okContent },
      '400': errorRef('Invalid request'),
      '429': errorRef('Rate limited'),
    };
    if (r.access !== 'public') {
      responses['401'] = errorRef('Missing or invalid API key');
      if (r.access !== 'authenticated') responses['403'] = errorRef(`Needs permission ${r.access}`);
    }
    if (pathParams.length) responses['404'] = errorRef('Not found');
    const op: Record<string, unknown> = {
      operationId: operationId(r),
      summary: r.summary,
      tags: [r.tag],
      parameters: [...pathParams, ...queryParams],
      responses,
      'x-certctl-permission': r.access,
    };
    if (r.access === 'public') op.security = [];
    if (r.body) op.requestBody = { required: true, content: { 'application/json': { schema: r.body } } };
    else if (r.rawBody) {
      const types = r.rawBodyTypes ?? ['application/octet-stream'];
      op.requestBody = { required: true, content: Object.fromEntries(types.map((t) => [t, { schema: { type: 'string', format: 'binary' } }])) };
    }
    (paths[oaPath] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'certctl API', version: info.version, description: 'Certificate lifecycle control plane' },
    servers: [{ url: info.serverUrl }],
    security: [{ apiKey: [] }],
    paths,
    components: {
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'API key: Authorization: Bearer <key>' } },
      schemas: { Error: ERROR_SCHEMA },
    },
  };
}

function listEnvelope(item?: JsonSchema): JsonSchema {
  return {
    type: 'object',
    required: ['data', 'total', 'page', 'per_page', 'next_cursor'],
    properties: {
      data: { type: 'array', items: item ?? { type: 'object' } },
      total: { type: 'integer' },
      page: { type: 'integer' },
      per_page: { type: 'integer' },
      next_cursor: { type: ['string', 'null'] },
    },
  };
}

function operationId(r: RouteDef): string {
  const words = r.path.replace(/^\/api\/v1\//, '').split('/').map((s) => (s.startsWith(':') ? 'by-' + s.slice(1) : s));
  return [r.method.toLowerCase(), ...words].join('-').replace(/[^a-zA-Z0-9]+(.)/g, (_, c: string) => c.toUpperCase());
}
