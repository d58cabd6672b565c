import { mount } from '@vue/test-utils';
import { describe, expect, it } from 'vitest';
import { nextTick } from 'vue';
import SchemaForm from './SchemaForm.vue';
import { defaultsOf, formSchema, pruneEmpty, uiSchemaFor } from './schema-utils';
import { settle } from '../test-support/fake-api';

const SCHEMA = {
  type: 'object',
  required: ['url', 'token'],
  additionalProperties: false,
  properties: {
    url: { type: 'string', format: 'uri', description: 'CA endpoint' },
    token: { type: 'string', minLength: 8, writeOnly: true, description: 'API token' },
    retries: { type: 'integer', minimum: 0, maximum: 5, default: 2 },
    mode: { type: 'string', enum: ['fast', 'safe'] },
  },
};

async function mountForm(props: Record<string, unknown> = {}) {
  const w = mount(SchemaForm, { props: { schema: SCHEMA, modelValue: {}, testid: 'f', showSummary: true, ...props }, attachTo: document.body });
  await settle();
  await nextTick();
  return w;
}

describe('SchemaForm (JSON Forms wrapper)', () => {
  it('renders one input per property with data-testids derived from the schema path', async () => {
    const w = await mountForm();
    for (const field of ['url', 'token', 'retries', 'mode']) expect(w.find(`[data-testid="f-field-${field}"]`).exists(), field).toBe(true);
    expect(w.find('[data-testid="f-field-mode"]').element.tagName).toBe('SELECT');
    w.unmount();
  });

  it('shows validation messages for bad input and reports them', async () => {
    const w = await mountForm({ modelValue: { url: 'not a url', token: 'short', retries: 9 } });
    const text = w.text();
    expect(text).toMatch(/must match format "uri"/);
    expect(text).toMatch(/must NOT have fewer than 8 characters/);
    expect(text).toMatch(/must be <= 5/);
    const validity = w.emitted('validity')!.at(-1)![0] as string[];
    expect(validity.length).toBeGreaterThanOrEqual(3);
    expect(w.find('[data-testid="f-errors"]').exists()).toBe(true);
    w.unmount();
  });

  it('reports missing required fields, and none once the data is valid', async () => {
    const w = await mountForm();
    expect((w.emitted('validity')!.at(-1)![0] as string[]).join(' ')).toMatch(/url|token/);
    await w.setProps({ modelValue: { url: 'https://ca.example', token: 'long-enough-token' } });
    await settle();
    expect(w.emitted('validity')!.at(-1)![0]).toEqual([]);
    w.unmount();
  });

  it('renders secret fields write-only: a password input never filled from data', async () => {
    const w = await mountForm({ modelValue: { url: 'https://ca.example', token: 'stored-secret-value' }, secretsSet: ['token'] });
    const input = w.find('[data-testid="f-field-token"]').element as HTMLInputElement;
    expect(input.type).toBe('password');
    expect(input.value).toBe('');
    expect(input.autocomplete).toBe('new-password');
    expect(input.placeholder).toMatch(/leave empty to keep/);
    expect(w.html()).not.toContain('stored-secret-value');
    w.unmount();
  });

  it('passes typed secret values up, and an emptied secret as absent', async () => {
    const w = await mountForm({ modelValue: { url: 'https://ca.example' } });
    const input = w.find('[data-testid="f-field-token"]');
    await input.setValue('a-new-token-1234');
    await settle();
    expect((w.emitted('update:modelValue')!.at(-1)![0] as Record<string, unknown>).token).toBe('a-new-token-1234');
    await input.setValue('');
    await settle();
    expect((w.emitted('update:modelValue')!.at(-1)![0] as Record<string, unknown>).token).toBeUndefined();
    w.unmount();
  });

  it('shows the errors the kernel returned', async () => {
    const w = await mountForm({ serverErrors: [{ path: 'config.url', message: 'host not allowed' }] });
    expect(w.find('[data-testid="f-server-errors"]').text()).toContain('config.url: host not allowed');
    w.unmount();
  });
});

describe('schema helpers', () => {
  it('turns nullable types into plain ones and keeps the rest', () => {
    expect(formSchema({ type: 'object', properties: { a: { type: ['string', 'null'], minLength: 1 } } })).toEqual({ type: 'object', properties: { a: { type: 'string', minLength: 1 } } });
  });
  it('collects defaults but never for secrets', () => {
    expect(defaultsOf({ properties: { a: { default: 1 }, s: { default: 'x', writeOnly: true }, b: {} } })).toEqual({ a: 1 });
  });
  it('orders controls by ui:order and omits fields', () => {
    const ui = uiSchemaFor({ properties: { a: {}, b: {}, c: {} } }, { 'ui:order': ['c', 'a'] }, ['b']);
    expect(ui.elements!.map((e) => e.scope)).toEqual(['#/properties/c', '#/properties/a']);
  });
  it('prunes empty values', () => {
    expect(pruneEmpty({ a: '', b: 0, c: { d: '' }, e: ['x'], f: null })).toEqual({ b: 0, e: ['x'] });
  });
});

describe('SchemaForm omit', () => {
  it('neither renders nor validates omitted fields (the caller supplies them)', async () => {
    const w = mount(SchemaForm, { props: { schema: { type: 'object', required: ['type', 'name'], properties: { type: { type: 'string' }, name: { type: 'string' } } }, modelValue: { name: 'x' }, testid: 'o', omit: ['type'] } });
    await settle();
    expect(w.find('[data-testid="o-field-type"]').exists()).toBe(false);
    expect(w.emitted('validity')!.at(-1)![0]).toEqual([]);
    w.unmount();
  });
});
