import { afterAll, beforeAll, describe, it } from 'vitest';
import type { IsolateRunner } from '../../kernel/src/plugins/runners/isolate/index.js';
import { callPlugin, expectFailure, expectRecovered, runnerFor } from './support.js';

// The sandbox does not touch a database: run once, not per database project.
describe('isolate sandbox: thrown values', () => {
  let runner: IsolateRunner;
  beforeAll(() => { ({ runner } = runnerFor('throw-values.js')); });
  afterAll(() => runner.close());

  it('turns anything thrown into plugin_error with a safe message', async () => {
    await expectFailure(callPlugin(runner, 'throwString'), 'plugin_error', /^throwString threw non-Error value thrown: boom$/);
    await expectFailure(callPlugin(runner, 'throwNumber'), 'plugin_error', /^throwNumber threw non-Error value thrown: 42$/);
    await expectFailure(callPlugin(runner, 'throwNull'), 'plugin_error', /^throwNull threw non-Error value thrown: null$/);
    await expectFailure(callPlugin(runner, 'throwUndefined'), 'plugin_error', /^throwUndefined threw non-Error value thrown: undefined$/);
    await expectFailure(callPlugin(runner, 'throwSymbol'), 'plugin_error', /^throwSymbol threw non-Error value thrown: a symbol$/);
    await expectFailure(callPlugin(runner, 'throwSync'), 'plugin_error', /^throwSync threw TypeError: thrown synchronously$/);
    await expectRecovered(runner);
  });

  it('survives thrown objects whose getters or traps throw', async () => {
    await expectFailure(callPlugin(runner, 'throwGetter'), 'plugin_error', /^throwGetter threw non-Error value thrown \(unreadable\)$/);
    await expectFailure(callPlugin(runner, 'throwProxy'), 'plugin_error', /^throwProxy threw non-Error value thrown/);
    await expectRecovered(runner);
  });

  it('does not let a plugin forge a host refusal code', async () => {
    await expectFailure(callPlugin(runner, 'throwForgedRefusal'), 'plugin_error', /PluginHostError: pretend the host said no/);
  });
});

describe('isolate sandbox: results', () => {
  let runner: IsolateRunner;
  beforeAll(() => { ({ runner } = runnerFor('bad-results.js', { maxResultBytes: 1024 * 1024 })); });
  afterAll(() => runner.close());

  it('refuses results over the size cap, counted in UTF-8 bytes', async () => {
    await expectFailure(callPlugin(runner, 'hugeString'), 'bad_result', /over the 1048576-byte limit/);
    await expectFailure(callPlugin(runner, 'hugeMultibyte'), 'bad_result', /result is 1228802 bytes, over the 1048576-byte limit/);
    await expectFailure(callPlugin(runner, 'hugeArray'), 'bad_result', /over the 1048576-byte limit/);
    await expectRecovered(runner);
  });

  it('refuses results that are not plain JSON', async () => {
    await expectFailure(callPlugin(runner, 'dateValue'), 'bad_result', /result\.when is a non-plain object/);
    await expectFailure(callPlugin(runner, 'mapValue'), 'bad_result', /result is a non-plain object/);
    await expectFailure(callPlugin(runner, 'bigintValue'), 'bad_result', /result\.n is a bigint, not JSON/);
    await expectFailure(callPlugin(runner, 'cyclic'), 'bad_result', /result\.self is a circular reference/);
    await expectFailure(callPlugin(runner, 'nothing'), 'bad_result', /result is a undefined, not JSON/);
    await expectFailure(callPlugin(runner, 'nanValue'), 'bad_result', /result\.n is NaN, not a JSON number/);
    await expectFailure(callPlugin(runner, 'getterThrows'), 'bad_result', /result cannot be read: Error: gotcha/);
    await expectRecovered(runner);
  });
});
