export { EventBus, type EventListener } from './event-bus.js';
export { LiveSocketServer, WS_PATH, WS_PROTOCOL, CLOSE, type LiveSocketOptions } from './ws-server.js';
export { eventFromAudit, mayReceive, type LiveEvent } from './live-event.js';
