import https from 'node:https';

/**
 * A keep-alive HTTPS client that trusts exactly the kernel's own certificate
 * (no verification switched off) and sends one API key on every request.
 */
export function apiClient({ baseUrl, ca, key, maxSockets = 16 }) {
  const agent = new https.Agent({ ca, keepAlive: true, maxSockets });
  const get = (path) => new Promise((resolve, reject) => {
    const req = https.request(new URL(path, baseUrl), { method: 'GET', agent, headers: { authorization: `Bearer ${key}` } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) {
          reject(new Error(`GET ${path} -> ${res.statusCode} ${text.slice(0, 300)}`));
          return;
        }
        try {
          resolve(JSON.parse(text));
        } catch (err) {
          reject(err);
        }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  return { get, close: () => agent.destroy() };
}
