// Auth on the page. When the server runs with --auth-secret, the page's
// requests carry a token in the coedit_token cookie: the embedding app's
// login sets it, or the app links to the page with ?token=, which the
// server moves into the cookie (and off the address bar) before the page
// loads. The WebSocket and the HTTP requests are same-origin, so the
// browser sends the cookie with each; nothing here handles the token.
//
// What the page must handle is losing it: the server closes a connection
// whose token expires with 4001, and refuses a new one (401, which a
// browser WebSocket reports only as a close without an open). authSocket
// tells the page either way, and the page stops reconnecting and shows
// showAuthScreen. Unsent edits stay saved in the browser and go out when
// the page is opened again with a new token.

/** CLOSE_TOKEN_EXPIRED is the close code of a connection whose token expired. */
export const CLOSE_TOKEN_EXPIRED = 4001;

/**
 * authSocket returns a WebSocket class for Connection's WebSocket option
 * that calls onFailure(reason) when the token is the problem: 'expired'
 * for a close with 4001; for a socket that closed without opening, the
 * verdict of checkToken ('expired', 'invalid' or 'missing'), if any.
 */
export function authSocket(onFailure, { WebSocket = globalThis.WebSocket, fetch = globalThis.fetch } = {}) {
  return class AuthSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      let opened = false;
      this.addEventListener('open', () => {
        opened = true;
      });
      this.addEventListener('close', (ev) => {
        if (ev.code === CLOSE_TOKEN_EXPIRED) onFailure('expired');
        else if (!opened) checkToken(fetch).then((reason) => reason && onFailure(reason));
      });
    }
  };
}

/**
 * checkToken asks GET /api/auth whether the page's token is accepted. It
 * resolves to null when it is (or auth is off, or the server cannot be
 * reached: then the connection's own retries go on), else to 'expired',
 * 'missing' or 'invalid'.
 */
export async function checkToken(fetch = globalThis.fetch) {
  try {
    const res = await fetch('/api/auth', { cache: 'no-store', credentials: 'same-origin' });
    if (res.status !== 401) return null;
    const code = (await res.json())?.error?.code;
    if (code === 'ERR_TOKEN_EXPIRED') return 'expired';
    return code === 'ERR_TOKEN_REQUIRED' ? 'missing' : 'invalid';
  } catch {
    return null;
  }
}

const MESSAGES = {
  expired: ['Your access has expired', 'Open this document again from your application to get a new access token.'],
  missing: ['Sign-in needed', 'This server needs an access token. Open this document from your application.'],
  invalid: ['Access token not accepted', 'Open this document again from your application to get a new access token.'],
};

/**
 * showAuthScreen covers the page with a notice that asks for a new token
 * (once; later calls do nothing), and a button that reloads the page.
 */
export function showAuthScreen(reason, doc = globalThis.document) {
  if (doc.getElementById('auth-screen')) return;
  const [title, text] = MESSAGES[reason] ?? MESSAGES.invalid;
  const screen = doc.createElement('div');
  screen.id = 'auth-screen';
  screen.setAttribute('role', 'alertdialog');
  screen.setAttribute('aria-labelledby', 'auth-screen-title');
  screen.dataset.reason = reason;
  // Styled here, through the CSSOM (which the page's CSP allows), so the
  // screen needs nothing from the stylesheet.
  Object.assign(screen.style, {
    position: 'fixed', inset: '0', zIndex: '100', display: 'flex', flexDirection: 'column',
    alignItems: 'center', justifyContent: 'center', gap: '0.75rem', padding: '2rem',
    background: 'rgba(255,255,255,0.96)', color: '#222', textAlign: 'center', font: '16px system-ui, sans-serif',
  });
  const h = doc.createElement('h2');
  h.id = 'auth-screen-title';
  h.textContent = title;
  const p = doc.createElement('p');
  p.textContent = `${text} Edits not yet saved stay in this browser and are sent when you come back.`;
  const again = doc.createElement('button');
  again.type = 'button';
  again.textContent = 'Reload';
  again.addEventListener('click', () => globalThis.location.reload());
  screen.append(h, p, again);
  doc.body.append(screen);
}
