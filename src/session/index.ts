/** The session layer: sessions, their factory and pool, and the resume file. */
export * from './types.js';
export * from './state-machine.js';
export * from './session.js';
export * from './service-sessions.js';
export * from './factory.js';
export * from './pool.js';
export * from './task-status.js';
