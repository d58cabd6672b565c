// Plain JavaScript: the benchmarks import it too (through postgres-cluster.js).
import net from 'node:net';

/** @returns {Promise<number>} a loopback port nothing listens on right now. */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (srv.address());
      srv.close(() => resolve(port));
    });
  });
}
