// The two things every client module hands out: events (Emitter) and the
// error value for a server's error reply (ServerError).

/** Emitter is a minimal event emitter: on returns an unsubscribe function. */
export class Emitter {
  constructor() {
    this.listeners = new Map();
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    this.listeners.get(type)?.delete(fn);
  }

  emit(type, ...args) {
    for (const fn of [...(this.listeners.get(type) ?? [])]) fn(...args);
  }
}

/** ServerError is an error reply from the server ({code, message}). */
export class ServerError extends Error {
  constructor(e) {
    super(e?.message ?? String(e));
    this.code = e?.code ?? 'ERR_UNKNOWN';
  }
}
