import https from 'node:https';

/**
 * A keep-alive HTTPS client that trusts exactly the kernel's own certificate
 * (no verification switched off) and sends an API key on every request: `key`,
 * or the one a request names (an agent polling with its own key).
 * Resolves the parsed JSON body (null when empty); rejects on a non-2xx status.
 */
export function apiClient({ baseUrl, ca, key, maxSockets = 16 }) {
  const agent = new https.Agent({ ca, keepAlive: true, maxSockets });
  const request = (method, path, { body, key: as = key } = {}) => new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers = { authorization: `Bearer ${as}`, ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) };
    const req = https.request(new URL(path, baseUrl), { method, agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode < 200 || res.statusCode >= 300) {
          reject(new Error(`${method} ${path} -> ${res.statusCode} ${text.slice(0, 300)}`));
          return;
        }
        try {
          resolve(text ? JSON.parse(text) : null);
        } catch (err) {
          reject(err);
        }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
  return { request, get: (path) => request('GET', path), close: () => agent.destroy() };
}
