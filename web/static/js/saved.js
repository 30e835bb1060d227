// Unsent edits kept in localStorage, so that a page closed (or crashed)
// before the server acknowledged its edits hands them to the next page.
//
// Saved state carries the (src, seq) of the op that was in flight and the
// connection's next seq, so the next page resends that op as a resend (the
// server answers a duplicate with its ack and applies it once) and numbers
// its new ops after every seq the old page used. Two rules make that safe:
//
//   - One page at a time. Each page saves in a slot of its own, a
//     localStorage key that it holds a Web Lock on (navigator.locks) for
//     as long as it lives. A new page adopts a slot only when it can take
//     that lock, that is, only when the page that saved it is gone; two
//     pages opened at once cannot both adopt it, and a page never takes
//     the edits of another that is still open.
//   - Write ahead. The page saves before an op with a new seq leaves (the
//     Doc's 'sending' event), not only now and then: a crash after a send
//     leaves a saved state that knows the seq was used, so the next page
//     neither reuses the seq nor sends an edit that was already sent as a
//     new one.
//
// Without Web Locks (pages not served over https or from localhost) or
// without localStorage, nothing is saved: edits live in the page only, and
// the page asks before it is closed with edits unsent.

/** keyPrefix starts every saved-edits key. */
export const keyPrefix = 'coedit:unsaved:';

// saveDelay is how long after a change (other than a send) the state is
// saved; a change within it is saved with the next.
const saveDelay = 400;

// waitForLock is how long a new page waits for the lock of a slot whose
// page may be unloading (a reload): a live page holds its lock for good.
const waitForLock = 250;

const slotPattern = /^#[0-9a-f]{16}$/;

/**
 * SavedEdits is one page's slot of saved edits for one document. Create it
 * with SavedEdits.claim.
 */
export class SavedEdits {
  constructor(storage, key, release, state) {
    this.storage = storage;
    /** key is the slot's localStorage key (and the name of its lock). */
    this.key = key;
    /** state is what an earlier page saved in the slot, or null. */
    this.state = state;
    /** ok is false after a save failed: the edits are in the page only. */
    this.ok = true;
    this.release = release;
  }

  /**
   * claim finds this page a slot for collection/id and takes its lock: a
   * slot an earlier page left (its lock free), whose state the page
   * restores, or else a new empty one. It returns null when storage or
   * locks is missing. storage is a Storage (localStorage), locks a
   * LockManager (navigator.locks); random returns a slot name (16 hex
   * digits).
   */
  static async claim({ storage, locks, collection, id, random }) {
    if (!storage || !locks) return null;
    const base = docKey(collection, id);
    const legacy = `${keyPrefix}${collection}/${id}`; // pages before slots saved here
    const found = [];
    try {
      for (let i = 0; i < storage.length; i++) {
        const k = storage.key(i);
        if (k === legacy || (k?.startsWith(base) && slotPattern.test(k.slice(base.length)))) found.push(k);
      }
    } catch {
      return null; // storage disabled
    }
    // Ask for every candidate at once; adopt the oldest one granted.
    const grants = await Promise.all(found.map((k) => takeLock(locks, k, waitForLock)));
    const adopted = [];
    for (const [i, release] of grants.entries()) {
      if (!release) continue;
      const state = read(storage, found[i]);
      if (state) adopted.push({ key: found[i], release, state });
      else release();
    }
    adopted.sort((a, b) => (a.state.savedAt ?? 0) - (b.state.savedAt ?? 0));
    for (const extra of adopted.slice(1)) extra.release(); // left for the next page
    if (adopted.length > 0) {
      const { key, release, state } = adopted[0];
      return new SavedEdits(storage, key, release, state);
    }
    for (;;) {
      const key = `${base}#${random()}`;
      const release = await takeLock(locks, key, 0);
      if (release) return new SavedEdits(storage, key, release, null);
    }
  }

  /**
   * track keeps doc's unacknowledged edits saved in this slot, with what
   * conn's next page needs: its src and next seq. It saves at once before
   * an op with a new seq is sent (write ahead), and within saveDelay of
   * any other change. It returns a function that saves at once, for the
   * page to call when it is hidden or closed.
   */
  track(conn, doc) {
    let timer = 0;
    const persist = () => {
      clearTimeout(timer);
      timer = 0;
      const state = doc.saveState();
      this.save(state ? { doc: state, src: conn.id, seq: conn.seq } : null);
    };
    doc.on('sending', persist);
    doc.on('version', () => {
      if (!timer) timer = setTimeout(persist, saveDelay);
    });
    return persist;
  }

  /**
   * connectionOptions are the Connection options that continue the saved
   * page's src and seq ({} when nothing was restored).
   */
  connectionOptions() {
    const s = this.state;
    return s?.src ? { id: s.src, seq: s.seq } : s?.seq ? { seq: s.seq } : {};
  }

  /**
   * save stores value (JSON-safe; null clears the slot) at once. When the
   * write fails (quota) it removes what the slot held, since a stale
   * state restored later would reuse a seq, and sets ok to false.
   */
  save(value) {
    try {
      if (value == null) this.storage.removeItem(this.key);
      else this.storage.setItem(this.key, JSON.stringify({ ...value, savedAt: Date.now() }));
      this.ok = true;
    } catch {
      this.ok = false;
      try {
        this.storage.removeItem(this.key);
      } catch {
        // nothing more to do: the slot cannot be written at all
      }
    }
    return this.ok;
  }
}

// docKey is the prefix of a document's slot keys; the names are encoded so
// that no two documents share one.
function docKey(collection, id) {
  return `${keyPrefix}${encodeURIComponent(collection)}/${encodeURIComponent(id)}`;
}

function read(storage, key) {
  try {
    const v = JSON.parse(storage.getItem(key) ?? 'null');
    return v && typeof v === 'object' && v.doc ? v : null;
  } catch {
    return null;
  }
}

// takeLock requests the exclusive lock name, waiting up to wait ms (0:
// only if free now). It resolves to a function that releases the lock,
// or null when the lock was not granted.
function takeLock(locks, name, wait) {
  return new Promise((resolve) => {
    let opts = { ifAvailable: true };
    let timer = 0;
    if (wait > 0) {
      const abort = new AbortController();
      timer = setTimeout(() => abort.abort(), wait);
      opts = { signal: abort.signal };
    }
    locks
      .request(name, opts, (lock) => {
        clearTimeout(timer);
        if (!lock) {
          resolve(null);
          return undefined;
        }
        // Held until release is called (or the page goes away).
        return new Promise((release) => resolve(release));
      })
      .catch(() => resolve(null)); // timed out
  });
}
