/**
 * The OpenAPI 3.1 document, generated from the routes as registered: their paths, methods, auth, and the zod
 * schemas they validate bodies with (z.toJSONSchema, draft 2020-12, which OpenAPI 3.1 uses as is). Nothing here is
 * written twice: a route that is not registered is not documented, and a registered route carries its `doc`.
 */
import { z } from 'zod';
import type { ResponseDoc, Route } from './router.js';

export interface OpenApiInfo {
  readonly title: string;
  readonly version: string;
  readonly description: string;
}

type Json = Record<string, unknown>;

/** `/sessions/:id` → `/sessions/{id}`. */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}');
}

function schemaOf(schema: z.ZodType, io: 'input' | 'output'): Json {
  const s = z.toJSONSchema(schema, { target: 'draft-2020-12', unrepresentable: 'any', io }) as Json;
  delete s.$schema;
  return s;
}

function response(doc: ResponseDoc): Json {
  if (doc.contentType) return { description: doc.description, content: { [doc.contentType]: {} } };
  if (doc.schema)
    return {
      description: doc.description,
      content: { 'application/json': { schema: schemaOf(doc.schema, 'output') } },
    };
  return { description: doc.description };
}

const VALIDATION_ERROR: Json = {
  description: 'Validation error (FastAPI’s shape: detail is a list of {type, loc, msg, input})',
  content: { 'application/json': { schema: { $ref: '#/components/schemas/ValidationError' } } },
};

function operation(route: Route): Json {
  const doc = route.doc;
  const params: Json[] = [];
  for (const seg of route.path.split('/'))
    if (seg.startsWith(':'))
      params.push({ name: seg.slice(1), in: 'path', required: true, schema: { type: 'string' } });
  if (doc.query) {
    const shape = doc.query.shape as Record<string, z.ZodType>;
    for (const [name, field] of Object.entries(shape)) {
      const schema = schemaOf(field, 'input');
      const p: Json = { name, in: 'query', required: !field.safeParse(undefined).success, schema };
      if (schema.type === 'array') {
        p.style = 'form';
        p.explode = true;
      }
      if (typeof schema.description === 'string') p.description = schema.description;
      params.push(p);
    }
  }
  const responses: Json = {};
  for (const [status, r] of Object.entries(doc.responses)) responses[status] = response(r);
  const op: Json = {
    operationId: `${route.method.toLowerCase()}${openApiPath(route.path).replace(/[^A-Za-z0-9]+(.)?/g, (_m, c?: string) => (c ? c.toUpperCase() : ''))}`,
    summary: doc.summary,
    tags: [doc.tag],
  };
  if (doc.description) op.description = doc.description;
  if (params.length > 0) op.parameters = params;
  if (doc.body)
    op.requestBody = {
      required: true,
      content: { 'application/json': { schema: schemaOf(doc.body, 'input') } },
    };
  else if (doc.bodyType)
    op.requestBody = {
      required: true,
      content: { [doc.bodyType]: { schema: doc.bodyType === 'application/json' ? { type: 'object' } : {} } },
    };
  if (route.auth === false) op.security = [];
  else {
    responses['401'] ??= { description: 'Wrong API key' };
    if (params.length > 0 || doc.body || doc.bodyType) responses['422'] ??= VALIDATION_ERROR;
  }
  op.responses = responses;
  return op;
}

/** The document for these routes. */
export function openApiDocument(routes: readonly Route[], info: OpenApiInfo): Json {
  const paths: Record<string, Json> = {};
  for (const route of routes) {
    const p = (paths[openApiPath(route.path)] ??= {});
    p[route.method.toLowerCase()] = operation(route);
  }
  return {
    openapi: '3.1.0',
    info,
    paths,
    security: [{ apiKey: [] }, { bearer: [] }],
    components: {
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'the API key (or, for /metrics, --metrics-token)',
        },
      },
      schemas: {
        ValidationError: {
          type: 'object',
          properties: {
            detail: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  type: { type: 'string' },
                  loc: { type: 'array', items: { type: ['string', 'integer'] } },
                  msg: { type: 'string' },
                  input: {},
                  ctx: { type: 'object' },
                },
                required: ['type', 'loc', 'msg'],
              },
            },
          },
        },
      },
    },
  };
}
