// Test OpenID Provider for the renewal_middleware test suite.
//
// oidc-provider (pinned in package.json) on 127.0.0.1 only, configured by environment variables:
//   OP_PORT              (required) port to listen on; issuer is http://127.0.0.1:$OP_PORT
//   OP_ACCESS_TOKEN_TTL  access token lifetime in seconds (default 60)
//   OP_ID_TOKEN_TTL      ID token lifetime in seconds (default 3600)
//   OP_CLIENTS           JSON list of client metadata objects (default: one "demo-app" client)
//   OP_JWKS_FILE         RSA signing JWKS; generated and saved when missing (default tests/op/.jwks.json)
//   OP_EXIT_ON_STDIN_EOF "1": also exit when stdin reaches EOF (the harness's parent-death guard)
//
// Test-only endpoints (not part of any spec):
//   GET  /__stats        {"grants": {...}, "grant_errors": {...}, "revocations": n, "end_session": n, ...}
//   POST /__stats/reset  zero the counters (and drop any pending /__fail fault)
//   POST /__fail         {"status": 503, "count": 2} or {"hang_ms": 5000, "count": 1}: fault injection
//                        for the next `count` token-endpoint requests; {"count": 0} clears it.
//
// Interactions (own tiny pages, no external resources):
//   GET  /interaction/:uid          login form (fields login, password) or consent form ("Continue")
//   POST /interaction/:uid/login    login=alice&password=wonderland
//   POST /interaction/:uid/confirm  consent: grants every requested scope (incl. offline_access)
//   GET  /interaction/:uid/abort    ends the interaction with access_denied
//
// RP-initiated logout: GET /session/end?... renders a form (id "op.logoutForm") with a hidden `xsrf`
// input; POST it to /session/end/confirm with `xsrf=<value>&logout=yes` to finish the logout
// headlessly (303 to the post_logout_redirect_uri).
//
// Prints exactly one line "READY <issuer>" on stdout once listening. Exits on SIGTERM/SIGINT.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Provider, { errors } from 'oidc-provider';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const HOST = '127.0.0.1';

function intFromEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

const PORT = intFromEnv('OP_PORT', undefined);
if (PORT === undefined || PORT === 0) {
  process.stderr.write('OP_PORT is required\n');
  process.exit(2);
}
const ISSUER = `http://${HOST}:${PORT}`;
const ACCESS_TOKEN_TTL = intFromEnv('OP_ACCESS_TOKEN_TTL', 60);
const ID_TOKEN_TTL = intFromEnv('OP_ID_TOKEN_TTL', 3600);
const JWKS_FILE = path.resolve(process.env.OP_JWKS_FILE || path.join(HERE, '.jwks.json'));

// ---------------------------------------------------------------------------------------------
// Clients

const CLIENT_DEFAULTS = {
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  scope: 'openid profile email offline_access groups',
  token_endpoint_auth_method: 'client_secret_basic',
};

const DEFAULT_CLIENTS = [{
  client_id: 'demo-app',
  client_secret: 'demo-secret',
  redirect_uris: ['http://127.0.0.1:8000/callback', 'http://127.0.0.1:8000/silent'],
  post_logout_redirect_uris: ['http://127.0.0.1:8000/'],
}];

function loadClients() {
  const raw = process.env.OP_CLIENTS;
  const list = raw ? JSON.parse(raw) : DEFAULT_CLIENTS;
  if (!Array.isArray(list)) throw new Error('OP_CLIENTS must be a JSON list of client metadata objects');
  return list.map((client) => ({ ...CLIENT_DEFAULTS, ...client }));
}

// ---------------------------------------------------------------------------------------------
// Signing keys: stable across restarts (tokens issued before a restart still verify).

function loadOrCreateJwks(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  const thumbprint = crypto.createHash('sha256')
    .update(JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n }))
    .digest('base64url');
  const jwks = { keys: [{ ...jwk, kid: thumbprint, alg: 'RS256', use: 'sig' }] };
  // Write to a temp file, then link() it into place: atomic and first-writer-wins, so two
  // providers starting at once agree on one key set.
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o600 });
  try {
    fs.linkSync(tmp, file);
  } catch (err) {
    if (err.code !== 'EEXIST') throw err;
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } finally {
    fs.unlinkSync(tmp);
  }
  return jwks;
}

// ---------------------------------------------------------------------------------------------
// Accounts

const USERS = new Map([
  ['alice', {
    password: 'wonderland',
    claims: {
      sub: 'alice',
      name: 'Alice Liddell',
      given_name: 'Alice',
      family_name: 'Liddell',
      email: 'alice@example.com',
      email_verified: true,
    },
  }],
  // Carol belongs to 1,200 groups: about 86 KB of claims with the "groups" scope (the token
  // sets of Entra ID or Keycloak users with many groups), more than cookies can hold.
  ['carol', {
    password: 'looking-glass',
    claims: {
      sub: 'carol',
      name: 'Carol Groups',
      email: 'carol@example.com',
      email_verified: true,
      // Hashes, so that they do not compress away: about 86 KB, 40 KB deflated.
      groups: Array.from({ length: 1200 }, (_, i) => crypto.createHash('sha256').update(`group ${i}`).digest('hex')),
    },
  }],
  ['bob', {
    password: 'builder',
    claims: {
      sub: 'bob',
      name: 'Bob Builder',
      given_name: 'Bob',
      family_name: 'Builder',
      email: 'bob@example.com',
      email_verified: true,
    },
  }],
]);

async function findAccount(_ctx, sub) {
  const user = USERS.get(sub);
  if (!user) return undefined;
  return {
    accountId: sub,
    async claims() {
      return { ...user.claims };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Plain Map adapter: no LRU eviction (the built-in memory adapter keeps 1,000 entries in total).
// Expired entries are dropped lazily on access and by a periodic sweep.

const STORE = new Map(); // key -> { payload, expiresAt (ms) | undefined }
const GRANT_MEMBERS = new Map(); // grantId -> Set of keys
const GRANTABLE = new Set([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode',
]);

function storeGet(key) {
  const entry = STORE.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
    STORE.delete(key);
    return undefined;
  }
  return entry.payload;
}

function storeSet(key, payload, expiresIn) {
  const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined;
  STORE.set(key, { payload, expiresAt });
}

setInterval(() => {
  const now = Date.now();
  for (const [key, entry] of STORE) {
    if (entry.expiresAt !== undefined && entry.expiresAt <= now) STORE.delete(key);
  }
}, 60_000).unref();

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    storeSet(key, structuredClone(payload), expiresIn);
    if (this.model === 'Session' && payload.uid) {
      storeSet(`sessionUid:${payload.uid}`, id, expiresIn);
    }
    if (payload.userCode) {
      storeSet(`userCode:${payload.userCode}`, id, expiresIn);
    }
    if (GRANTABLE.has(this.model) && payload.grantId) {
      let members = GRANT_MEMBERS.get(payload.grantId);
      if (!members) {
        members = new Set();
        GRANT_MEMBERS.set(payload.grantId, members);
      }
      members.add(key);
    }
  }

  async find(id) {
    const payload = storeGet(this.key(id));
    return payload === undefined ? undefined : structuredClone(payload);
  }

  async findByUid(uid) {
    const id = storeGet(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = storeGet(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = storeGet(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    const key = this.key(id);
    const payload = storeGet(key);
    STORE.delete(key);
    if (payload?.grantId) GRANT_MEMBERS.get(payload.grantId)?.delete(key);
  }

  async revokeByGrantId(grantId) {
    const members = GRANT_MEMBERS.get(grantId);
    if (!members) return;
    for (const key of members) STORE.delete(key);
    GRANT_MEMBERS.delete(grantId);
  }
}

// ---------------------------------------------------------------------------------------------
// HTML (no external resources)

function esc(value) {
  return String(value)
    .replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;').replaceAll("'", '&#39;');
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:sans-serif;max-width:24em;margin:2em auto}label,input,button{display:block;margin:.4em 0}.error{color:#b00}</style>
</head>
<body>
${body}
</body>
</html>
`;
}

function loginPage(uid, { error, login = '' } = {}) {
  return page('Sign in', `<h1>Sign in</h1>
${error ? `<p class="error" id="error">${esc(error)}</p>` : ''}
<form id="login-form" method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
<label for="login">Username</label>
<input id="login" name="login" type="text" value="${esc(login)}" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" required>
<button id="login-submit" type="submit">Sign in</button>
</form>
<p><a href="/interaction/${esc(uid)}/abort">Cancel</a></p>`);
}

function consentPage(uid, { clientId, scope }) {
  return page('Authorize', `<h1>Authorize ${esc(clientId)}</h1>
<p>Requested scopes: <span id="scopes">${esc(scope)}</span></p>
<form id="consent-form" method="post" action="/interaction/${esc(uid)}/confirm">
<button id="consent-submit" type="submit" autofocus>Continue</button>
</form>
<p><a href="/interaction/${esc(uid)}/abort">Cancel</a></p>`);
}

async function logoutSource(ctx, form) {
  // `form` is <form id="op.logoutForm" method="post" action="…/session/end/confirm"> with a hidden
  // xsrf input. Put the buttons inside it so a headless client sees the whole form.
  const buttons = `<button id="logout-yes" type="submit" name="logout" value="yes" autofocus>Yes, sign me out</button>
<button id="logout-no" type="submit">No, stay signed in</button>`;
  ctx.type = 'html';
  ctx.body = page('Sign out', `<h1>Sign out of ${esc(ctx.host)}?</h1>\n${form.replace('</form>', `${buttons}</form>`)}`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.type = 'html';
  ctx.body = page('Signed out', '<h1 id="signed-out">Signed out</h1>');
}

async function renderError(ctx, out) {
  ctx.type = 'html';
  const rows = Object.entries(out).map(([k, v]) => `<dt>${esc(k)}</dt><dd class="${esc(k)}">${esc(v)}</dd>`).join('\n');
  ctx.body = page('Error', `<h1>Error</h1>\n<dl id="error">\n${rows}\n</dl>`);
}

// ---------------------------------------------------------------------------------------------
// Provider

const configuration = {
  clients: loadClients(),
  adapter: MapAdapter,
  jwks: loadOrCreateJwks(JWKS_FILE),
  findAccount,
  claims: {
    openid: ['sub'],
    profile: ['name', 'given_name', 'family_name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  cookies: { keys: ['renewal-middleware-test-op-cookie-key'] },
  interactions: {
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  features: {
    devInteractions: { enabled: false },
    revocation: {
      enabled: true,
      // Same rule as the default, defined here only to keep the provider quiet.
      allowedPolicy: async (_ctx, client, token) => {
        if (token.clientId !== client.clientId) {
          if (client.clientAuthMethod === 'none') return false;
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        }
        return true;
      },
    },
    introspection: {
      enabled: true,
      allowedPolicy: async (ctx, client, token) => !(client.clientAuthMethod === 'none' && token.clientId !== ctx.oidc.client.clientId),
    },
    rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
    // Clients that register a backchannel_logout_uri get a logout token POSTed at sign-out.
    backchannelLogout: { enabled: true },
  },
  pkce: { required: () => true }, // the default only requires PKCE for public clients
  rotateRefreshToken: true,
  // oidc-provider refuses outgoing requests to special-use addresses (SSRF protection) by
  // passing its own dispatcher; the apps under test live on 127.0.0.1, so drop it here.
  fetch: (url, options) => globalThis.fetch(url, { ...options, dispatcher: undefined }),
  clientBasedCORS: () => true,
  renderError,
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    AuthorizationCode: 60,
    IdToken: ID_TOKEN_TTL,
    RefreshToken: 14 * 24 * 60 * 60,
    Interaction: 60 * 60,
    Session: 14 * 24 * 60 * 60,
    Grant: 14 * 24 * 60 * 60,
  },
};

const provider = new Provider(ISSUER, configuration);

// RFC 8252 §7.3 style loopback matching for every client: a redirect_uri or
// post_logout_redirect_uri on http://127.0.0.1 (or localhost / [::1]) matches a registered one when
// everything but the port is identical. Tests run the RP on random free ports.
// The comparison is on the strings (no URL normalisation): only the ":port" part is dropped.
const LOOPBACK_URI = /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(?::\d{1,5})?(?=[/?#]|$)/u;

function withoutLoopbackPort(uri) {
  const m = typeof uri === 'string' ? LOOPBACK_URI.exec(uri) : null;
  if (!m || !URL.canParse(uri)) return undefined;
  return `http://${m[1]}${uri.slice(m[0].length)}`;
}

function loopbackAllowed(value, registered) {
  const candidate = withoutLoopbackPort(value);
  return candidate !== undefined && registered.some((uri) => withoutLoopbackPort(uri) === candidate);
}

const { redirectUriAllowed, postLogoutRedirectUriAllowed } = provider.Client.prototype;
provider.Client.prototype.redirectUriAllowed = function portAgnosticRedirectUriAllowed(value) {
  return redirectUriAllowed.call(this, value) || loopbackAllowed(value, this.redirectUris);
};
provider.Client.prototype.postLogoutRedirectUriAllowed = function portAgnosticPostLogoutRedirectUriAllowed(value) {
  return postLogoutRedirectUriAllowed.call(this, value)
    || loopbackAllowed(value, this.postLogoutRedirectUris || []);
};

// ---------------------------------------------------------------------------------------------
// Stats and fault injection

function emptyStats() {
  return {
    grants: {},
    grant_errors: {},
    revocations: 0,
    end_session: 0,
    end_session_confirm: 0,
    authorizations: 0,
    authorizations_prompt_none: 0,
    faults: 0,
  };
}

let stats = emptyStats();
let fault = null; // { status?: number, hangMs?: number, remaining: number }

function bump(table, key) {
  table[key] = (table[key] || 0) + 1;
}

function takeFault() {
  if (!fault || fault.remaining <= 0) return null;
  fault.remaining -= 1;
  const taken = { ...fault };
  if (fault.remaining <= 0) fault = null;
  return taken;
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sendJson(ctx, status, body) {
  ctx.status = status;
  ctx.type = 'application/json';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = JSON.stringify(body);
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

const ROUTES = {
  token: '/token',
  revocation: '/token/revocation',
  authorization: '/auth',
  end_session: '/session/end',
  end_session_confirm: '/session/end/confirm',
};

async function testEndpoints(ctx) {
  if (ctx.path === '/__stats' && ctx.method === 'GET') {
    sendJson(ctx, 200, stats);
  } else if (ctx.path === '/__stats/reset' && ctx.method === 'POST') {
    stats = emptyStats();
    fault = null;
    sendJson(ctx, 200, stats);
  } else if (ctx.path === '/__fail' && ctx.method === 'POST') {
    let spec;
    try {
      spec = JSON.parse((await readBody(ctx.req)) || '{}');
    } catch {
      sendJson(ctx, 400, { error: 'invalid JSON' });
      return;
    }
    const count = spec.count ?? 1;
    const { status, hang_ms: hangMs, body, json, headers, close, late_ms: lateMs } = spec;
    const validStatus = status === undefined || (Number.isInteger(status) && status >= 100 && status <= 599);
    const validHang = hangMs === undefined || (Number.isInteger(hangMs) && hangMs >= 0);
    if (!Number.isInteger(count) || count < 0 || !validStatus || !validHang
        || (count > 0 && status === undefined && hangMs === undefined && !close
            && lateMs === undefined)) {
      sendJson(ctx, 400, { error: 'expected {"status": int, "count": int} or {"hang_ms": int, "count": int}' });
      return;
    }
    fault = count > 0
      ? { status, hangMs, body, json, headers, close, lateMs, remaining: count } : null;
    sendJson(ctx, 200, { status: status ?? null, hang_ms: hangMs ?? null, count });
  } else {
    sendJson(ctx, 404, { error: 'not_found' });
  }
}

async function tokenEndpoint(ctx, next) {
  // Counted in the stats of when the request arrived: a request that hangs past a
  // /__stats/reset must not show up in the next test's counters.
  const counters = stats;
  const injected = takeFault();
  if (injected) counters.faults += 1;
  if (injected?.status !== undefined) {
    // Fail without reaching oidc-provider; read the body only to learn the grant type.
    let grantType = 'unknown';
    try {
      grantType = new URLSearchParams(await readBody(ctx.req)).get('grant_type') || 'unknown';
    } catch { /* keep "unknown" */ }
    if (injected.hangMs) await sleep(injected.hangMs);
    bump(counters.grant_errors, grantType);
    for (const [name, value] of Object.entries(injected.headers || {})) ctx.set(name, String(value));
    if (injected.body !== undefined) {
      ctx.status = injected.status;
      ctx.type = 'text/html';
      ctx.body = String(injected.body);
    } else {
      sendJson(ctx, injected.status, injected.json || { error: 'server_error' });
    }
    return;
  }
  if (injected?.close) {
    // Drop the connection without an answer.
    bump(counters.grant_errors, 'unknown');
    ctx.req.socket.destroy();
    ctx.respond = false;
    return;
  }
  if (injected?.hangMs) await sleep(injected.hangMs);
  let ok = false;
  try {
    await next();
    ok = ctx.status >= 200 && ctx.status < 300;
    // Processed, but answered late: the client may have given up by then.
    if (injected?.lateMs) await sleep(injected.lateMs);
  } finally {
    const grantType = ctx.oidc?.body?.grant_type || ctx.oidc?.params?.grant_type || 'unknown';
    bump(ok ? counters.grants : counters.grant_errors, String(grantType));
  }
}

// ---------------------------------------------------------------------------------------------
// Interactions

async function interaction(ctx, uid, action) {
  let details;
  try {
    details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== uid) throw new errors.SessionNotFound('interaction mismatch');
  } catch (err) {
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = page('Error', `<h1>Error</h1><p id="error">${esc(err.message)}</p>`);
    return;
  }
  const { prompt, params } = details;

  const finish = async (result) => {
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(returnTo);
  };

  if (action === '' && ctx.method === 'GET') {
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    if (prompt.name === 'login') {
      ctx.body = loginPage(uid);
    } else {
      ctx.body = consentPage(uid, { clientId: params.client_id, scope: params.scope });
    }
  } else if (action === 'login' && ctx.method === 'POST') {
    const form = new URLSearchParams(await readBody(ctx.req));
    const login = form.get('login') || '';
    const user = USERS.get(login);
    const password = Buffer.from(form.get('password') || '');
    const expected = Buffer.from(user?.password || '');
    if (!user || password.length !== expected.length || !crypto.timingSafeEqual(password, expected)) {
      ctx.status = 200;
      ctx.type = 'html';
      ctx.set('Cache-Control', 'no-store');
      ctx.body = loginPage(uid, { error: 'Invalid username or password.', login });
      return;
    }
    await finish({ login: { accountId: login } });
  } else if (action === 'confirm' && ctx.method === 'POST') {
    await readBody(ctx.req);
    const { session: { accountId } } = details;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId, clientId: params.client_id });
    // Grant everything that was asked for: every requested scope (offline_access included when
    // it survived the prompt=consent rule), claims and resource scopes.
    if (params.scope) grant.addOIDCScope(params.scope);
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    if (missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    await finish({ consent: { grantId } });
  } else if (action === 'abort' && ctx.method === 'GET') {
    await finish({ error: 'access_denied', error_description: 'End-User aborted interaction' });
  } else {
    ctx.status = 405;
    ctx.body = 'method not allowed';
  }
}

// ---------------------------------------------------------------------------------------------
// Middleware: counters, fault injection, test endpoints, interactions. Everything else goes to
// oidc-provider's own router.

const INTERACTION_PATH = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?\/?$/;

provider.use(async (ctx, next) => {
  const { path: p, method } = ctx;
  if (p === '/__stats' || p === '/__stats/reset' || p === '/__fail') {
    await testEndpoints(ctx);
    return;
  }
  const m = INTERACTION_PATH.exec(p);
  if (m) {
    await interaction(ctx, m[1], m[2] || '');
    return;
  }
  if (p === ROUTES.token && method === 'POST') {
    await tokenEndpoint(ctx, next);
    return;
  }
  if (p === ROUTES.revocation && method === 'POST') stats.revocations += 1;
  else if (p === ROUTES.end_session) stats.end_session += 1;
  else if (p === ROUTES.end_session_confirm && method === 'POST') stats.end_session_confirm += 1;
  else if (p === ROUTES.authorization) {
    stats.authorizations += 1;
    if (String(ctx.query.prompt || '').split(' ').includes('none')) stats.authorizations_prompt_none += 1;
  }
  await next();
});

// Keep expected client errors off stderr; report real server faults briefly.
provider.on('server_error', (_ctx, err) => {
  process.stderr.write(`server_error: ${err?.stack || err}\n`);
});

provider.on('backchannel.error', (_ctx, err, client) => {
  process.stderr.write(`backchannel.error ${client.clientId}: ${err?.message || err}\n`);
});

const server = provider.listen(PORT, HOST, () => {
  process.stdout.write(`READY ${ISSUER}\n`);
});
server.on('error', (err) => {
  process.stderr.write(`listen failed: ${err.message}\n`);
  process.exit(1);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

// With OP_EXIT_ON_STDIN_EOF=1 (set by harness.py) the provider also exits when its stdin closes,
// so it never outlives a test process that died without stopping it.
if (process.env.OP_EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}
