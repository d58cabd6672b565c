import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { appError, type ErrorDetail } from '../errors.js';

// ajv-formats ships CJS; under NodeNext its default export is the module object.
type AddFormats = (ajv: Ajv) => Ajv;
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ?? addFormatsModule) as unknown as AddFormats;

/** One ajv instance for the kernel: strict schemas, no type coercion, compiled once per schema. */
export const ajv = new Ajv({ allErrors: true, strict: true, coerceTypes: false, useDefaults: true, allowUnionTypes: true });
addFormats(ajv);
// OpenAPI/plugin-schema annotations that are not validation keywords.
ajv.addKeyword({ keyword: 'x-secret' });
ajv.addKeyword({ keyword: 'x-order' });
ajv.addVocabulary(['example']);

export function toDetails(errors: ErrorObject[] | null | undefined): ErrorDetail[] {
  return (errors ?? []).slice(0, 20).map((e) => {
    const at = e.instancePath || '/';
    if (e.keyword === 'additionalProperties') {
      return { path: `${at === '/' ? '' : at}/${(e.params as { additionalProperty: string }).additionalProperty}`, message: 'unknown field' };
    }
    if (e.keyword === 'required') {
      return { path: `${at === '/' ? '' : at}/${(e.params as { missingProperty: string }).missingProperty}`, message: 'is required' };
    }
    return { path: at, message: e.message ?? e.keyword };
  });
}

/** Validates and throws a catalogued 400 with one detail per problem. */
export function assertValid<T>(validate: ValidateFunction, value: unknown, what = 'Request body'): T {
  if (!validate(value)) {
    const details = toDetails(validate.errors);
    throw appError('VALIDATION_FAILED', `${what} failed validation: ${details.map((d) => `${d.path} ${d.message}`).join('; ')}`, { details });
  }
  return value as T;
}
