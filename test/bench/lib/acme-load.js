import crypto from 'node:crypto';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import acme from 'acme-client';
import { processTreeCpuMs, threadCpuMs } from './proc-cpu.js';

/**
 * The ACME load generator: the acme-client library (the same code for every server) in a
 * worker thread, so that its JWS signing and parsing do not queue on the event loop of a
 * kernel running in the bench's own process.
 *
 * One account, then orders started at a steady arrival rate (`rate` per second), at most
 * `concurrency` in flight (an arrival that finds every slot busy waits for one). Per order:
 * newOrder -> fetch each authorization -> only where one is pending, answer its http-01
 * challenge and poll it (Pebble with PEBBLE_VA_ALWAYS_VALID; certctl's trust_authenticated
 * mode creates them valid) -> finalize with a CSR -> poll the order -> download the chain.
 * Latency is from the order's scheduled arrival to the chain in hand, so any wait for a slot
 * counts. Each chain is parsed and its leaf checked against the name ordered.
 *
 * CPU time of the measured part: `cpuMs.client` (this thread), `cpuMs.benchProcess` (the whole
 * bench process: with the kernel in it, that minus the client is the kernel's), and for each
 * `watch` entry { name: pid } that process and its children (Pebble; PostgreSQL's postmaster).
 *
 * Resolves { latencies (ms), seconds, failures, firstError, queued, requestsPerOrder, pendingAuthz, cpuMs }.
 */
export function runAcmeLoad(opts) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { acmeLoad: opts } });
    worker.once('message', (msg) => {
      // Its keep-alive sockets would hold the thread open.
      void worker.terminate();
      if (msg.error) reject(new Error(msg.error));
      else resolve(msg.result);
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`ACME load worker exited (${code}) without a result`)));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

async function load({ directoryUrl, ca, rate, concurrency, orders, warmup, tag, poll, watch = {} }) {
  acme.axios.defaults.httpsAgent = new https.Agent({ ca, keepAlive: true, maxSockets: concurrency * 2 });
  let requests = 0;
  acme.axios.interceptors.request.use((config) => { requests++; return config; });
  const client = new acme.Client({
    directoryUrl, accountKey: await acme.crypto.createPrivateEcdsaKey(),
    // Polls of pending objects: right away, then after poll, 2x poll, ... up to 1 s.
    backoffMin: poll, backoffMax: 1000, backoffAttempts: 30,
  });
  await client.createAccount({ termsOfServiceAgreed: true, contact: [`mailto:bench@${tag}.example.test`] });

  // CSRs made before anything is measured (one key for all: key generation is the client's business).
  const certKey = await acme.crypto.createPrivateEcdsaKey();
  const names = Array.from({ length: warmup + orders }, (_, i) => `o${i}-${crypto.randomBytes(3).toString('hex')}.${tag}.example.test`);
  const csrs = [];
  for (const name of names) csrs.push((await acme.crypto.createCsr({ commonName: name, altNames: [name] }, certKey))[1]);

  let pendingAuthz = 0;
  const one = async (i) => {
    const name = names[i];
    const order = await client.createOrder({ identifiers: [{ type: 'dns', value: name }] });
    for (const authz of await client.getAuthorizations(order)) {
      if (authz.status === 'valid') continue;
      pendingAuthz++;
      const challenge = authz.challenges.find((c) => c.type === 'http-01') ?? authz.challenges[0];
      await client.completeChallenge(challenge);
      await client.waitForValidStatus(authz);
    }
    const finalized = await client.finalizeOrder(order, csrs[i]);
    const chain = await client.getCertificate(finalized);
    const leaf = new crypto.X509Certificate(chain.split(/(?<=-----END CERTIFICATE-----)/)[0].trim());
    if (!leaf.subjectAltName?.split(', ').includes(`DNS:${name}`)) throw new Error(`certificate for ${name} names ${leaf.subjectAltName}`);
    if (new Date(leaf.validTo).getTime() <= Date.now()) throw new Error(`certificate for ${name} has expired`);
  };

  for (let i = 0; i < warmup; i++) await one(i);

  const latencies = [];
  let failures = 0;
  let firstError = null;
  let queued = 0;
  let inFlight = 0;
  const freed = [];
  const running = [];
  const requests0 = requests;
  const pending0 = pendingAuthz;
  const cpu = () => {
    const u = process.cpuUsage();
    return { client: threadCpuMs(), benchProcess: (u.user + u.system) / 1000, ...Object.fromEntries(Object.entries(watch).map(([k, pid]) => [k, processTreeCpuMs(pid)])) };
  };
  const cpu0 = cpu();
  const t0 = performance.now();
  for (let n = 0; n < orders; n++) {
    const arrival = t0 + (n * 1000) / rate;
    await sleep(arrival - performance.now());
    if (inFlight >= concurrency) {
      queued++;
      while (inFlight >= concurrency) await new Promise((r) => freed.push(r));
    }
    inFlight++;
    running.push(one(warmup + n).then(
      () => latencies.push(performance.now() - arrival),
      (err) => { failures++; firstError ??= String(err?.message ?? err); },
    ).finally(() => { inFlight--; freed.shift()?.(); }));
  }
  await Promise.all(running);
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = cpu();
  const cpuMs = Object.fromEntries(Object.keys(cpu0).map((k) => [k, cpu0[k] === null || cpu1[k] === null ? null : cpu1[k] - cpu0[k]]));
  return { latencies, seconds, failures, firstError, queued, requestsPerOrder: (requests - requests0) / orders, pendingAuthz: (pendingAuthz - pending0) / orders, cpuMs };
}

if (!isMainThread && workerData?.acmeLoad) {
  load(workerData.acmeLoad).then(
    (result) => parentPort.postMessage({ result }),
    (err) => parentPort.postMessage({ error: String(err?.stack ?? err) }),
  );
}
