import { describeRealTarget } from './real-target-suite.js';

// A real haproxy from the Debian package, on a loopback port, deployed to through the agent's plugin host.
describeRealTarget('haproxy', { validateRejectsEncryptedKey: false });
