export { jsonProblem } from '../policy/json-value.js';

/** A deep copy through JSON text: what the plugin receives, and what the host receives back. */
export const jsonCopy = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;
