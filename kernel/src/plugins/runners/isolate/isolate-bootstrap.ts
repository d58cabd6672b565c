/**
 * The code that runs *inside* a plugin's isolate context, before the plugin's
 * own script. It turns the single host function it is handed (`send`, an
 * isolated-vm Callback that only carries strings out) into a PluginContext,
 * CommonJS `module`/`exports`, `setTimeout`/`clearTimeout` and `console`, and
 * returns one `control` function the sandbox process calls by Reference
 * (load, run, deliver an op answer, fire a timer).
 *
 * Nothing here is trusted: the plugin shares this context and may replace any
 * global or prototype member. Intrinsics are captured up front so ordinary
 * plugins that polyfill globals keep a working bridge, but every limit is also
 * enforced by the sandbox process, and only strings ever leave the isolate.
 * No isolated-vm object (Reference, ExternalCopy) is ever reachable from here.
 * ctx.issuance's methods are spelled out, not built from the SDK's ISSUANCE_METHODS:
 * the sandbox process may read only its own files (permission model), not
 * @certctl/sdk; isolate-bootstrap.test.ts holds the two lists equal.
 */
export const BOOTSTRAP_SOURCE = String.raw`(function certctlSandboxBridge(send, settingsJson) {
  'use strict';
  const jsonParse = JSON.parse;
  const jsonStringify = JSON.stringify;
  const reflectApply = Reflect.apply;
  const objectKeys = Object.keys;
  const objectFreeze = Object.freeze;
  const getPrototypeOf = Object.getPrototypeOf;
  const isArray = Array.isArray;
  const ObjectPrototype = Object.prototype;
  const hasOwnProperty = Object.prototype.hasOwnProperty;
  const ErrorCtor = Error;
  const TypeErrorCtor = TypeError;
  const RangeErrorCtor = RangeError;
  const StringCtor = String;
  const NumberCtor = Number;
  const isFinite = Number.isFinite;
  const dateNow = Date.now;
  const stringSlice = String.prototype.slice;
  const MapCtor = Map;
  const mapGet = Map.prototype.get;
  const mapSet = Map.prototype.set;
  const mapDelete = Map.prototype.delete;
  const mapValues = Map.prototype.values;
  const WeakMapCtor = WeakMap;
  const weakGet = WeakMap.prototype.get;
  const weakSet = WeakMap.prototype.set;
  const PromiseCtor = Promise;

  const settings = jsonParse(settingsJson);
  const limits = settings.limits;

  const hasOwn = (o, k) => reflectApply(hasOwnProperty, o, [k]);
  const clip = (s, n) => (s.length > n ? reflectApply(stringSlice, s, [0, n]) + '...' : s);
  const isObjectLike = (v) => v !== null && (typeof v === 'object' || typeof v === 'function');

  /** Same wording as the worker tier's describeThrown, so a plugin cannot tell the tiers apart. */
  function describeThrown(value) {
    try {
      let isError = false;
      try { isError = value instanceof ErrorCtor; } catch (_) { isError = false; }
      if (isError || (value && typeof value === 'object' && typeof value.message === 'string')) {
        const name = typeof value.name === 'string' && value.name ? value.name : 'Error';
        const message = value.message;
        return clip(name + ': ' + (typeof message === 'string' ? message : ''), 1000);
      }
      if (value === null || value === undefined) return 'non-Error value thrown: ' + StringCtor(value);
      if (typeof value === 'string') return clip('non-Error value thrown: ' + value, 1000);
      if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return 'non-Error value thrown: ' + StringCtor(value);
      if (typeof value === 'symbol') return 'non-Error value thrown: a symbol';
      if (typeof value === 'function') return 'non-Error value thrown: a function';
      return 'non-Error value thrown: an object';
    } catch (_) {
      return 'non-Error value thrown (unreadable)';
    }
  }

  /** Why a value is not plain JSON (the worker tier's rule: no undefined, Dates, Maps, class instances, NaN, cycles). */
  function jsonProblem(value) {
    const seen = [];
    function visit(v, at, depth) {
      if (v === null || typeof v === 'string' || typeof v === 'boolean') return null;
      if (typeof v === 'number') return isFinite(v) ? null : at + ' is ' + StringCtor(v) + ', not a JSON number';
      if (typeof v !== 'object') return at + ' is a ' + typeof v + ', not JSON';
      if (depth > 64) return at + ' is nested deeper than 64 levels';
      for (let i = 0; i < seen.length; i++) if (seen[i] === v) return at + ' is a circular reference';
      seen[seen.length] = v;
      try {
        if (isArray(v)) {
          const n = v.length;
          for (let i = 0; i < n; i++) {
            const p = visit(v[i], at + '[' + i + ']', depth + 1);
            if (p) return p;
          }
          return null;
        }
        const proto = getPrototypeOf(v);
        if (proto !== ObjectPrototype && proto !== null) return at + ' is a non-plain object, not plain JSON';
        const keys = objectKeys(v);
        for (let i = 0; i < keys.length; i++) {
          const p = visit(v[keys[i]], at + '.' + keys[i], depth + 1);
          if (p) return p;
        }
        return null;
      } finally {
        seen.length = seen.length - 1;
      }
    }
    return visit(value, 'result', 0);
  }

  const fail = (code, message) => 'err:' + jsonStringify({ code: code, message: message });

  // ---- host operations ------------------------------------------------
  const pending = new MapCtor();
  const hostErrors = new WeakMapCtor();
  let nextOpId = 1;
  let ops = 0;

  function hostOp(op) {
    return new PromiseCtor(function (resolve, reject) {
      if (ops >= limits.maxOpsPerCall) throw new RangeErrorCtor(op.op + ': more than ' + limits.maxOpsPerCall + ' host operations in one call');
      let json;
      try {
        json = jsonStringify(op);
      } catch (err) {
        throw new TypeErrorCtor(op.op + ': arguments must be plain JSON (' + describeThrown(err) + ')');
      }
      if (json.length > limits.maxOpBytes) throw new RangeErrorCtor(op.op + ': arguments are larger than ' + limits.maxOpBytes + ' bytes');
      ops++;
      const id = nextOpId++;
      reflectApply(mapSet, pending, [id, { resolve: resolve, reject: reject }]);
      send('op', id, json);
    });
  }

  function toText(v) {
    if (typeof v === 'string') return v;
    try {
      if (v !== null && typeof v === 'object') return jsonStringify(v);
      return StringCtor(v);
    } catch (_) {
      return '[unprintable]';
    }
  }

  /** Log lines are fire-and-forget (PluginLogger returns void); over the op limit they are dropped. */
  function logLine(level, message, fields) {
    if (ops >= limits.maxOpsPerCall) return;
    let json;
    try {
      const op = { op: 'log', level: level, message: clip(toText(message), 8000) };
      if (fields !== undefined) {
        let clean;
        try {
          const text = jsonStringify(fields);
          clean = text === undefined ? null : jsonParse(text);
        } catch (_) {
          clean = { fields: '[not JSON]' };
        }
        op.fields = clean !== null && typeof clean === 'object' && !isArray(clean) ? clean : { value: clean };
      }
      json = jsonStringify(op);
      if (json.length > limits.maxOpBytes) json = jsonStringify({ op: 'log', level: level, message: clip(op.message, 1000) });
    } catch (_) {
      json = jsonStringify({ op: 'log', level: level, message: '[unprintable log line]' });
    }
    ops++;
    send('op', 0, json);
  }

  function deliver(opId, ok, payload, code, refusal) {
    const waiter = reflectApply(mapGet, pending, [opId]);
    if (!waiter) return;
    reflectApply(mapDelete, pending, [opId]);
    if (ok) {
      waiter.resolve(payload === null ? undefined : jsonParse(payload));
      return;
    }
    const err = new ErrorCtor(payload);
    err.name = refusal && code ? 'PluginHostError' : 'Error';
    if (code) err.code = code;
    reflectApply(weakSet, hostErrors, [err, { code: code, refusal: refusal, message: payload }]);
    waiter.reject(err);
  }

  function deepFreeze(v) {
    if (v !== null && typeof v === 'object') {
      const keys = objectKeys(v);
      for (let i = 0; i < keys.length; i++) deepFreeze(v[keys[i]]);
      objectFreeze(v);
    }
    return v;
  }

  function makeContext(meta, config) {
    const jsonArg = (v) => (v === undefined ? null : v);
    return deepFreeze({
      pluginId: meta.pluginId,
      instanceId: meta.instanceId,
      config: config,
      secrets: {
        get: async function get(path) {
          const v = await hostOp({ op: 'secrets.get', path: StringCtor(path) });
          return typeof v === 'string' ? v : undefined;
        },
        deriveKey: function deriveKey(label) { return hostOp({ op: 'secrets.deriveKey', label: StringCtor(label) }); },
      },
      log: {
        debug: function debug(message, fields) { logLine('debug', message, fields); },
        info: function info(message, fields) { logLine('info', message, fields); },
        warn: function warn(message, fields) { logLine('warn', message, fields); },
        error: function error(message, fields) { logLine('error', message, fields); },
      },
      http: {
        fetch: function fetch(request) { return hostOp({ op: 'http.fetch', request: jsonArg(request) }); },
      },
      kv: {
        get: async function get(key) {
          const v = await hostOp({ op: 'kv.get', key: StringCtor(key) });
          // The broker answers { value } so that a stored null and an absent key differ.
          return v !== null && typeof v === 'object' && !isArray(v) && hasOwn(v, 'value') ? v.value : undefined;
        },
        set: async function set(key, value, options) {
          const ttl = options && options.ttlSeconds;
          const op = { op: 'kv.set', key: StringCtor(key), value: jsonArg(value) };
          if (ttl !== undefined) op.ttlSeconds = NumberCtor(ttl);
          await hostOp(op);
        },
        delete: async function del(key) { await hostOp({ op: 'kv.delete', key: StringCtor(key) }); },
        take: async function take(key) {
          const v = await hostOp({ op: 'kv.take', key: StringCtor(key) });
          return v !== null && typeof v === 'object' && !isArray(v) && hasOwn(v, 'value') ? v.value : undefined;
        },
        increment: function increment(key, options) {
          const op = { op: 'kv.increment', key: StringCtor(key) };
          if (options && options.by !== undefined) op.by = NumberCtor(options.by);
          if (options && options.ttlSeconds !== undefined) op.ttlSeconds = NumberCtor(options.ttlSeconds);
          return hostOp(op);
        },
        list: function list(prefix) {
          return hostOp(prefix === undefined ? { op: 'kv.list' } : { op: 'kv.list', prefix: StringCtor(prefix) });
        },
      },
      events: {
        emit: async function emit(type, data) { await hostOp({ op: 'events.emit', type: StringCtor(type), data: jsonArg(data) }); },
      },
      clock: {
        now: function now() { return dateNow(); },
        deadline: function deadline() { return meta.deadline; },
      },
      ca: {
        ensure: function ensure(request) { return hostOp({ op: 'ca.ensure', request: jsonArg(request) }); },
        sign: function sign(request) { return hostOp({ op: 'ca.sign', request: jsonArg(request) }); },
      },
      issuance: {
        enroll: function enroll(request) { return hostOp({ op: 'issuance.enroll', request: jsonArg(request) }); },
        revoke: function revoke(request) { return hostOp({ op: 'issuance.revoke', request: jsonArg(request) }); },
        caChain: function caChain(request) { return hostOp({ op: 'issuance.caChain', request: jsonArg(request) }); },
        checkHttp01: function checkHttp01(request) { return hostOp({ op: 'issuance.checkHttp01', request: jsonArg(request) }); },
        checkDns01: function checkDns01(request) { return hostOp({ op: 'issuance.checkDns01', request: jsonArg(request) }); },
        checkTlsAlpn01: function checkTlsAlpn01(request) { return hostOp({ op: 'issuance.checkTlsAlpn01', request: jsonArg(request) }); },
        certificateStatus: function certificateStatus(request) { return hostOp({ op: 'issuance.certificateStatus', request: jsonArg(request) }); },
        raCertificate: function raCertificate(request) { return hostOp({ op: 'issuance.raCertificate', request: jsonArg(request) }); },
        raDecrypt: function raDecrypt(request) { return hostOp({ op: 'issuance.raDecrypt', request: jsonArg(request) }); },
        raSign: function raSign(request) { return hostOp({ op: 'issuance.raSign', request: jsonArg(request) }); },
      },
      fs: {
        read: function read(path) { return hostOp({ op: 'fs.read', path: StringCtor(path) }); },
        remove: async function remove(path) { await hostOp({ op: 'fs.remove', path: StringCtor(path) }); },
        write: async function write(path, data, options) {
          const op = { op: 'fs.write', path: StringCtor(path), data: StringCtor(data) };
          if (options && options.mode !== undefined) op.mode = NumberCtor(options.mode);
          await hostOp(op);
        },
      },
      exec: {
        run: function run(command, args, options) {
          const op = { op: 'exec.run', command: StringCtor(command), args: jsonArg(args) };
          if (options && options.timeoutMs !== undefined) op.timeoutMs = NumberCtor(options.timeoutMs);
          if (options && options.input !== undefined) op.input = StringCtor(options.input);
          return hostOp(op);
        },
      },
    });
  }

  // ---- timers: contained per call, fired by the sandbox process ---------
  const timers = new MapCtor();
  let nextTimerId = 1;
  let timersPending = 0;
  let timersTotal = 0;

  function setTimeoutImpl(callback, delay) {
    if (typeof callback !== 'function') throw new TypeErrorCtor('setTimeout needs a function (code strings are not evaluated)');
    if (timersPending >= limits.maxPendingTimers) throw new RangeErrorCtor('setTimeout: ' + limits.maxPendingTimers + ' timers are already pending in this call');
    if (timersTotal >= limits.maxTimersPerCall) throw new RangeErrorCtor('setTimeout: this call already scheduled ' + limits.maxTimersPerCall + ' timers');
    const args = [];
    for (let i = 2; i < arguments.length; i++) args[i - 2] = arguments[i];
    let ms = NumberCtor(delay);
    if (!(ms >= 0)) ms = 0;
    const id = nextTimerId++;
    timersPending++;
    timersTotal++;
    reflectApply(mapSet, timers, [id, { callback: callback, args: args }]);
    send('timer', id, ms);
    return id;
  }

  function clearTimeoutImpl(id) {
    if (reflectApply(mapDelete, timers, [id])) {
      timersPending--;
      send('clearTimer', id, 0);
    }
  }

  function fireTimer(id) {
    const t = reflectApply(mapGet, timers, [id]);
    if (!t) return;
    reflectApply(mapDelete, timers, [id]);
    timersPending--;
    try {
      reflectApply(t.callback, undefined, t.args);
    } catch (err) {
      send('uncaught', 0, 'a setTimeout callback threw ' + describeThrown(err));
    }
  }

  const consoleLine = (level) => function () {
    let line = '';
    for (let i = 0; i < arguments.length; i++) line += (i ? ' ' : '') + toText(arguments[i]);
    logLine(level, clip(line, 4000), { console: true });
  };

  globalThis.setTimeout = setTimeoutImpl;
  globalThis.clearTimeout = clearTimeoutImpl;
  globalThis.console = {
    log: consoleLine('info'), info: consoleLine('info'), debug: consoleLine('debug'), trace: consoleLine('debug'),
    warn: consoleLine('warn'), error: consoleLine('error'),
  };

  // ---- loading and running the plugin -----------------------------------
  let plugin = null;

  function load(factory) {
    if (typeof factory !== 'function') return fail('unavailable', 'the isolate entry is not a single CommonJS script');
    const module = { exports: {} };
    const require = function require(name) {
      throw new ErrorCtor('require(' + jsonStringify(toText(name)) + ') is not available in the sandbox: bundle dependencies into the entry script; Node built-ins do not exist here');
    };
    let exported;
    try {
      reflectApply(factory, undefined, [module, module.exports, require]);
      const ex = module.exports;
      exported = isObjectLike(ex) && isObjectLike(ex.default) ? ex.default : ex;
    } catch (err) {
      return fail('unavailable', 'the isolate entry threw while loading: ' + describeThrown(err));
    }
    if (!isObjectLike(exported)) return fail('unavailable', 'the isolate entry must set module.exports (or exports.default) to the plugin object');
    if (settings.kind !== null) {
      let kind;
      try { kind = exported.kind; } catch (_) { kind = undefined; }
      if (kind !== settings.kind) return fail('unavailable', 'the isolate entry exports a plugin of kind ' + toText(jsonStringify(kind)) + ', but the manifest says ' + settings.kind);
    }
    plugin = exported;
    return 'ok:';
  }

  async function run(method, requestJson, configJson, metaJson) {
    if (plugin === null) return fail('unavailable', 'the plugin is not loaded');
    let fn;
    try {
      fn = method in plugin && !(method in ObjectPrototype) ? plugin[method] : undefined;
    } catch (err) {
      return fail('plugin_error', 'reading ' + method + ' threw ' + describeThrown(err));
    }
    if (typeof fn !== 'function') return fail('not_supported', 'the plugin does not implement ' + method);
    const ctx = makeContext(jsonParse(metaJson), deepFreeze(jsonParse(configJson)));
    let value;
    try {
      value = await reflectApply(fn, plugin, [jsonParse(requestJson), ctx]);
    } catch (err) {
      const host = isObjectLike(err) ? reflectApply(weakGet, hostErrors, [err]) : undefined;
      if (host && host.refusal && host.code) return fail(host.code, host.message);
      return fail('plugin_error', method + ' threw ' + describeThrown(err));
    }
    let problem;
    try {
      problem = jsonProblem(value);
    } catch (err) {
      return fail('bad_result', 'result cannot be read: ' + describeThrown(err));
    }
    if (problem) return fail('bad_result', problem);
    let json;
    try {
      json = jsonStringify(value);
    } catch (err) {
      return fail('bad_result', 'result cannot be serialised: ' + describeThrown(err));
    }
    // UTF-16 length is a lower bound of the UTF-8 size; the sandbox process checks bytes exactly.
    if (json.length > limits.maxResultBytes) return fail('bad_result', 'result is over the ' + limits.maxResultBytes + '-byte limit');
    return 'ok:' + json;
  }

  return function control(what, a, b, c, d, e) {
    if (what === 'run') return run(a, b, c, d);
    if (what === 'deliver') return deliver(a, b, c, d, e);
    if (what === 'timer') return fireTimer(a);
    if (what === 'load') return load(a);
    return undefined;
  };
})`;

/**
 * The plugin's bundle becomes the body of a CommonJS module function; the script
 * evaluates to that function, which the bridge calls with module/exports/require.
 */
export function wrapPluginSource(source: string): string {
  return `(function (module, exports, require) {\n${source}\n})`;
}
