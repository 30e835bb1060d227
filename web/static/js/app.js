// The editing page: wires the client (connection.js, document.js, presence.js), the textarea binding
// (editor.js) and the caret overlay (overlay.js) to the page's elements.
//
// Presence uses two channels per document:
//   "<collection>.<id>"        text presence {index, length} in code points,
//                              which the server moves over ops like ShareDB;
//   "<collection>.<id>#users"  untyped {name, color} per presence id,
//                              relayed as is.
// Both use the same presence id (one per tab), which joins a caret to a name.
import { authSocket, showAuthScreen } from './auth.js';
import { Connection, randomId, State } from './connection.js';
import { TextareaBinding } from './editor.js';
import { Overlay } from './overlay.js';
import { SavedEdits } from './saved.js';

// PERSON is what a person id looks like (identity).
const PERSON = /^[0-9a-f]{12}$/;
const PALETTE = ['#c0392b', '#2e7d4f', '#6c4bb4', '#a8580a', '#1f78b4', '#b0306e', '#3b7d85', '#7a6a12'];

const $ = (id) => document.getElementById(id);
const body = document.body;
const collection = body.dataset.collection;
const docId = body.dataset.id;

function storage() {
  try {
    return window.localStorage;
  } catch {
    return null; // disabled (private mode, policy): work without it
  }
}
const store = storage();
const getItem = (k) => {
  try {
    return store?.getItem(k) ?? null;
  } catch {
    return null;
  }
};
const setItem = (k, v) => {
  try {
    if (v == null) store?.removeItem(k);
    else store?.setItem(k, v);
  } catch {
    // quota or disabled: the edits stay in memory only
  }
};

// Who I am: a name the user sets, and a colour picked once.
function identity() {
  let name = getItem('coedit:name');
  if (!name) {
    name = `Guest ${Math.floor(100 + Math.random() * 900)}`;
    setItem('coedit:name', name);
  }
  let color = getItem('coedit:color');
  if (!PALETTE.includes(color)) {
    color = PALETTE[Math.floor(Math.random() * PALETTE.length)];
    setItem('coedit:color', color);
  }
  // person tells this browser's tabs from other people's, who may share a
  // name and a colour: the tabs of one person are one chip, in one colour.
  let person = getItem('coedit:person');
  if (!PERSON.test(person ?? '')) {
    person = randomId(6);
    setItem('coedit:person', person);
  }
  return { name, color, person };
}

function colorFor(id) {
  let h = 0;
  for (const ch of id) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

const me = identity();
const presenceId = randomId(8);

// Edits that an earlier page made but the server never acknowledged
// (closed while offline, or crashed) come back, with that page's src and
// seq so the server can tell a resend from a new edit. SavedEdits gives
// them to one page only (see saved.js); it is null where the browser
// cannot keep them that safely.
const saved = await SavedEdits.claim({ storage: store, locks: navigator.locks, collection, id: docId, random: () => randomId(8) });

// The document rides along in the WebSocket's address so that everyone
// editing one document meets on one node of a cluster: the nodes pass
// the connection to the document's node (--advertise), or a load balancer
// in front of them hashes on it (README, "Run a cluster").
const wsURL = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws?doc=${encodeURIComponent(collection)}/${encodeURIComponent(docId)}`;
// A token that expires or is refused ends the connection for good (see
// auth.js): retrying cannot help until the user comes back with a new one.
const WebSocket = authSocket((reason) => {
  conn.close();
  showAuthScreen(reason);
});
const conn = new Connection(wsURL, { ...(saved?.connectionOptions() ?? {}), WebSocket });
const doc = conn.get(collection, docId);
const restored = saved?.state ? doc.restoreState(saved.state.doc) : false;

const ta = $('text');
const binding = new TextareaBinding(ta, doc);
const overlay = new Overlay(ta, $('overlay'));
overlay.reset(binding.shadow.s);

const textPresence = conn.docPresence(doc);
const users = conn.channel(`${collection}.${docId}#users`);

doc.subscribe();
textPresence.subscribe();
users.subscribe();
users.submit(presenceId, { name: me.name, color: me.color, person: me.person });

let created = false;
let focusedOnce = false;
doc.on('load', () => {
  if (doc.version != null && doc.type == null && !created && !restored) {
    // Opening a new document's address creates it.
    created = true;
    doc.create('');
  }
  ta.placeholder = doc.type == null ? 'This document was deleted.' : 'Start typing…';
  // The page is for typing: the first load puts the keyboard in the text,
  // unless the user has already gone elsewhere on the page.
  if (!focusedOnce && doc.type != null) {
    focusedOnce = true;
    if (document.activeElement === document.body || document.activeElement == null) ta.focus({ preventScroll: true });
  }
});
doc.on('del', () => notice('This document was deleted.'));
doc.on('replaced', ({ kept, lost }) => {
  const edits = (n) => (n === 1 ? '1 edit' : `${n} edits`);
  let text = 'The server lost recent changes and other editors went on without them; the document was reloaded.';
  if (kept > 0) text += ` Your ${edits(kept)} not yet saved ${kept === 1 ? 'was' : 'were'} put back.`;
  if (lost > 0) text += ` ${edits(lost)} not yet saved could not be put back.`;
  notice(text);
});
doc.on('lost', (err) => notice(`Edits an earlier page left unsent could not be restored (${err.code ?? err.message}).`));
doc.on('error', (err) => {
  if (!err.refused) {
    // Not an edit of ours: a refused subscribe or fetch (retried, or
    // answered by a fresh snapshot), a stray reply. Only a document the
    // token may not read is the user's to know.
    if (err.action === 's' && err.code === 'ERR_FORBIDDEN') notice('Your access token does not allow reading this document.', 20000);
    else console.warn('coedit:', err);
    return;
  }
  // Text the refusal undid (a paste too large, say) is offered back, to
  // copy, rather than lost.
  const lost = err.text ?? '';
  const copy = lost.length > 0 && navigator.clipboard ? { label: 'Copy the undone text', run: () => navigator.clipboard.writeText(lost) } : null;
  notice(refusal(err), 20000, false, copy);
});

// refusal says in plain words why the server refused an edit, which the
// page has undone.
function refusal(err) {
  switch (err.code) {
    case 'ERR_DOC_TOO_LARGE':
      return 'That edit would make the document larger than this server allows, so it was undone.';
    case 'ERR_OP_TOO_LARGE':
      return 'That edit is larger than this server takes at once, so it was undone. Paste it in smaller parts.';
    case 'ERR_RATE_LIMITED':
      return 'Edits came faster than this server takes them, so the last one was undone.';
    case 'ERR_FORBIDDEN':
      return 'You may read this document but not change it, so your edit was undone.';
    default:
      return `The server refused an edit (${err.code ?? err.message}), so it was undone.`;
  }
}
conn.on('error', (err) => console.warn('coedit:', err));

// Mirror and carets.
binding.on('reset', () => {
  overlay.reset(binding.shadow.s);
  drawCarets();
});
binding.on('edits', (edits, { remote }) => {
  const m = overlay.edit(edits, binding.shadow.s, remote);
  // Someone else's edit wholly above the view: keep the text the user is
  // looking at where it is.
  if (m && m.after !== m.before && m.before < ta.scrollTop) ta.scrollTop += m.after - m.before;
  drawCarets();
  drawTitle();
});
binding.on('reset', drawTitle);

// The tab is named after the text's first line, as a person names it, and
// after the document's id while that is empty.
function drawTitle() {
  const first = binding.shadow.s.slice(0, 200).split('\n', 1)[0].trim().slice(0, 80);
  const title = `${first || docId} · coedit`;
  if (document.title !== title) document.title = title;
}
binding.on('selection', (sel) => textPresence.submit(presenceId, sel));

let caretFrame = 0;
function drawCarets() {
  if (caretFrame) return;
  caretFrame = requestAnimationFrame(() => {
    caretFrame = 0;
    const list = [];
    const len = binding.shadow.cpLength;
    for (const [id, r] of textPresence.remote) {
      const v = r.value;
      if (!v || v.index > len) continue;
      const who = users.remote.get(id)?.value ?? {};
      const start = binding.shadow.toU16(v.index);
      const end = binding.shadow.toU16(Math.min(len, v.index + v.length));
      list.push({ id, name: String(who.name ?? 'Someone').slice(0, 40), color: safeColor(who.color) ?? colorFor(id), start, end });
    }
    overlay.setCarets(list);
  });
}

// personOf is the person id a presence value names, or its presence id.
const personOf = (id, v) => (typeof v.person === 'string' && PERSON.test(v.person) ? v.person : `~${id}`);

const safeColor = (c) => (typeof c === 'string' && /^#[0-9a-fA-F]{6}$/.test(c) ? c : null);

textPresence.on('update', drawCarets);
textPresence.on('reset', drawCarets);
users.on('update', () => {
  avoidSameColor();
  drawCarets();
  drawPeople();
});

// Two people with one colour cannot tell their carets apart: when someone
// here already has ours, the one whose person id is larger moves to a
// colour nobody here uses. Our own other tabs (the same person id) do not
// count, and every tab of a person compares the same person ids, so a
// person's tabs keep one colour and one chip in the list; only tabs that
// saw others arrive in different orders may end in two colours (not
// mended: a tab taking its other tabs' colour can clash where it is).
// (A page of an older version sends no person id: its presence id stands
// in.)
function avoidSameColor() {
  const taken = new Map();
  for (const [id, r] of users.remote) {
    if (r.value && personOf(id, r.value) !== me.person) taken.set(safeColor(r.value.color), personOf(id, r.value));
  }
  const holder = taken.get(me.color);
  if (!holder || holder > me.person) return;
  const free = PALETTE.find((c) => !taken.has(c));
  if (!free) return;
  me.color = free;
  setItem('coedit:color', free);
  users.submit(presenceId, { name: me.name, color: me.color, person: me.person });
}
users.on('reset', drawPeople);

// Who is here.
function drawPeople() {
  const list = $('people');
  // Entries of one person id are one person's tabs: one chip, with how
  // many.
  const items = [{ id: presenceId, person: me.person, name: me.name, color: me.color, mine: true, n: 1 }];
  for (const [id, r] of users.remote) {
    if (!r.value) continue;
    const p = { id, person: personOf(id, r.value), name: String(r.value.name ?? 'Someone').slice(0, 40), color: safeColor(r.value.color) ?? colorFor(id), n: 1 };
    const twin = items.find((q) => q.person === p.person);
    if (twin) twin.n++;
    else items.push(p);
  }
  for (const p of items) {
    if (p.mine) p.name += p.n > 1 ? ` (you, ${p.n} tabs)` : ' (you)';
    else if (p.n > 1) p.name += ` ×${p.n}`;
  }
  list.replaceChildren(
    ...items.map((p) => {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.textContent = p.name;
      li.append(name);
      li.title = p.name;
      li.setAttribute('aria-label', p.name);
      li.dataset.id = p.id;
      li.style.setProperty('--c', p.color);
      if (p.mine) li.className = 'me';
      return li;
    }),
  );
}
drawPeople();

// The user's name.
const nameInput = $('name');
nameInput.value = me.name;
nameInput.addEventListener('change', () => {
  const name = nameInput.value.trim().slice(0, 40) || me.name;
  nameInput.value = name;
  me.name = name;
  setItem('coedit:name', name);
  users.submit(presenceId, { name: me.name, color: me.color, person: me.person });
  drawPeople();
});

// Status: connection, unacknowledged edits, version.
const statusEl = $('status');
const statusText = $('status-text');
const countdownEl = $('countdown');
const retry = $('retry');
const savedEl = $('saved');
const versionEl = $('version');
let countdown = 0;

// The connection's state is read out by screen readers (#status-text is a
// live region) when it changes; the reconnect countdown and the saved
// state, which change with every second or keystroke, are not.
let wasAway = false;
function drawStatus() {
  const s = conn.state;
  statusEl.dataset.state = s;
  clearTimeout(countdown);
  retry.hidden = s !== State.RECONNECTING;
  const n = doc.unacknowledged;
  const kept = saved?.ok ? ' They are kept in this browser and sync by themselves.' : '';
  let text = 'Closed';
  let count = '';
  if (s === State.CONNECTED) text = 'Connected';
  else if (s === State.CONNECTING) text = 'Connecting…';
  else if (s === State.OFFLINE) text = 'Offline: keep typing, your edits merge when you are back';
  else if (s === State.RECONNECTING) {
    text = n > 0 ? `Cannot reach the server: keep typing.${kept}` : 'Cannot reach the server: keep typing, your edits merge when it is back.';
    const secs = Math.max(0, Math.ceil((conn.retryAt - Date.now()) / 1000));
    count = secs > 0 ? ` Trying again in ${secs} s…` : ' Trying again…';
    countdown = setTimeout(drawStatus, 500);
  }
  if (statusText.textContent !== text) statusText.textContent = text;
  countdownEl.textContent = count;
  if (s !== State.CONNECTED && s !== State.CONNECTING && doc.version != null) wasAway = true;
  if (n > 0) {
    savedEl.textContent = s === State.CONNECTED ? 'Saving…' : 'Changes not yet saved';
    savedEl.dataset.unsaved = '';
  } else {
    savedEl.textContent = doc.version == null ? '' : 'All changes saved';
    delete savedEl.dataset.unsaved;
    if (wasAway && s === State.CONNECTED) {
      wasAway = false;
      notice('Back online: all changes saved.', 8000, true);
    }
  }
  versionEl.textContent = doc.version == null ? '' : `v${doc.version}`;
}
conn.on('state', drawStatus);
doc.on('version', drawStatus);
retry.addEventListener('click', () => conn.reconnectNow());
drawStatus();

// notice shows a message in the status bar for ms, or until clicked; good
// news (good) in green, the rest as a warning.
let noticeTimer = 0;
function notice(text, ms = 8000, good = false, action = null) {
  const el = $('notice');
  el.textContent = text;
  if (action) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'link';
    b.textContent = action.label;
    b.addEventListener('click', (e) => {
      e.stopPropagation();
      Promise.resolve(action.run()).then(
        () => (b.textContent = 'Copied'),
        () => (b.textContent = 'Could not copy'),
      );
    });
    el.append(' ', b);
  }
  el.toggleAttribute('data-good', good);
  el.title = 'Click to dismiss';
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    el.hidden = true;
  }, ms);
}
$('notice').addEventListener('click', () => {
  clearTimeout(noticeTimer);
  $('notice').hidden = true;
});
if (restored && doc.unacknowledged > 0) {
  const n = doc.unacknowledged;
  notice(`${n === 1 ? 'A change' : `${n} changes`} this browser kept from an earlier visit ${n === 1 ? 'was' : 'were'} restored; ${n === 1 ? 'it syncs' : 'they sync'} by ${n === 1 ? 'itself' : 'themselves'}.`, 12000, true);
}

// The network: the browser knows before the socket does.
addEventListener('offline', () => conn.setOnline(false));
addEventListener('online', () => conn.setOnline(true));
if (navigator.onLine === false) conn.setOnline(false);

// Keep unacknowledged edits across a reload, a closed tab or a crash;
// where they cannot be kept, ask before the page goes with edits unsent.
if (saved) {
  const persist = saved.track(conn, doc);
  addEventListener('pagehide', persist);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') persist();
  });
}
addEventListener('beforeunload', (ev) => {
  if (doc.unacknowledged > 0 && !(saved?.ok)) ev.preventDefault();
});

// Copy link.
$('share').addEventListener('click', async () => {
  const btn = $('share');
  try {
    await navigator.clipboard.writeText(location.href);
    btn.textContent = 'Link copied';
  } catch {
    prompt('Copy this address:', location.href);
  }
  setTimeout(() => {
    btn.textContent = 'Copy link';
  }, 1500);
});

// For tests and the curious: the page's client objects.
window.coedit = { conn, doc, binding, overlay, textPresence, users, presenceId, saved };
