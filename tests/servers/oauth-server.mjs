// OAuth 2.0 authorization server for pullmail's end-to-end tests.
//
// A thin wrapper around the real npm package oidc-provider: client
// credentials grant, opaque access tokens, RFC 7662 introspection (used by
// Dovecot's passdb oauth2), or JWT access tokens (below).  Only the glue
// needed to look like Microsoft's identity platform lives here:
//   - /{tenant}/oauth2/v2.0/token is served as /token (unknown tenant: 400),
//   - the scope https://outlook.office365.com/.default becomes the scopes the
//     client was granted (oidc-provider would silently drop it),
//   - every token carries the claim "mail_user" = "*@DOMAIN", which Dovecot
//     compares with the login name through username_format = %Ld, so one app
//     token opens every mailbox of the domain (the app-only model).
//
// Usage: node oauth-server.mjs --config FILE [--port N] [--port-file FILE]
//                              [--log FILE]
// --port 0 (the default) binds a free port; --port-file receives its number.
//
// Config (JSON):
//   { "domain": "example.test", "tenants": ["contoso-tenant-id", ...],
//     "clients": [ { "client_id": "...", "client_secret": "...",
//                    "scope": "imap pop3", "auth": "post"|"basic",
//                    "ttl": 3600, "domain": "example.test",
//                    "token_length": 2000 }, ... ] }
//
// Delegated clients (issue 5) set "grant_types" (device code, authorization
// code, refresh_token), "redirect_uris" (native: any loopback port), and
// "auth": "none" (public client, PKCE) or "private_key_jwt" with
// "jwks_pem": a PEM certificate or public key file.  The human side of a
// delegated grant is oidc-provider's own devInteractions pages (any login
// name, any password); a delegated token's mail_user is the login name, so
// it opens only that mailbox's domain through Dovecot's %Ld check.  Refresh
// tokens are issued to every client allowed the refresh_token grant and are
// rotated on every use; a rotated-away one is refused (invalid_grant).
//
// JWT access tokens (optional), as Microsoft issues them:
//   "jwt": { "key": "FILE", "kid": "KEY-ID", "resource": "URI" }
// FILE holds a PEM RSA private key.  Every access token then is a JWT
// signed with it (RS256, header kid KEY-ID) for the resource server URI
// (claim aud; a request naming no resource gets this one), carrying the
// same claims introspection reports (mail_user, scope, client_id, exp), so
// that Dovecot can validate it locally with the public key and never calls
// the introspection endpoint.  The key also signs ID tokens.
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parse as parseQuery, stringify as stringifyQuery } from 'node:querystring';
import Provider from 'oidc-provider';

const MS_DEFAULT_SCOPE = 'https://outlook.office365.com/.default';

function usage(msg) {
  process.stderr.write(`oauth-server: ${msg}\n`);
  process.exit(64);
}

const opts = { port: '0' };
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  const m = /^--(config|port|port-file|log)$/.exec(arg);
  if (!m || i + 1 >= process.argv.length) usage(`bad argument ${arg}`);
  opts[m[1]] = process.argv[++i];
}
if (!opts.config) usage('--config FILE is required');

const config = JSON.parse(readFileSync(opts.config, 'utf8'));
const domain = config.domain || 'example.test';
const tenants = new Set(config.tenants || []);
const clientInfo = new Map();

function log(line) {
  const msg = `${new Date().toISOString()} ${line}\n`;
  if (opts.log) appendFileSync(opts.log, msg);
  else process.stdout.write(msg);
}

const clients = (config.clients || []).map((c) => {
  const secretless = c.auth === 'none' || c.auth === 'private_key_jwt';
  if (!c.client_id || (!c.client_secret && !secretless)) usage('client without client_id or client_secret');
  clientInfo.set(c.client_id, {
    scope: c.scope || 'imap pop3',
    ttl: c.ttl || 3600,
    domain: c.domain || domain,
    token_length: c.token_length || 0,
  });
  const grants = c.grant_types || ['client_credentials'];
  const meta = {
    client_id: c.client_id,
    grant_types: grants,
    response_types: grants.includes('authorization_code') ? ['code'] : [],
    redirect_uris: c.redirect_uris || [],
    scope: c.scope || 'imap pop3',
    token_endpoint_auth_method: { basic: 'client_secret_basic', none: 'none',
      private_key_jwt: 'private_key_jwt' }[c.auth] || 'client_secret_post',
  };
  if (c.client_secret) meta.client_secret = c.client_secret;
  if (meta.redirect_uris.length) meta.application_type = 'native';
  if (c.jwks_pem) {
    const jwk = createPublicKey(readFileSync(c.jwks_pem)).export({ format: 'jwk' });
    meta.jwks = { keys: [{ ...jwk, use: 'sig', alg: 'RS256' }] };
  }
  return meta;
});

// A short fingerprint of a token for the log: the tests compare them.
function fp(token) {
  return token ? createHash('sha256').update(String(token)).digest('hex').slice(0, 12) : '-';
}

const allScopes = new Set(['imap', 'pop3']);
for (const info of clientInfo.values()) {
  for (const s of info.scope.split(' ')) if (s) allScopes.add(s);
}

// Listen first: the issuer must carry the port (OpenID discovery).
let handler = (req, res) => { res.statusCode = 503; res.end(); };
const server = createServer((req, res) => handler(req, res));
await new Promise((resolve) => server.listen(Number(opts.port), '127.0.0.1', resolve));
const { port } = server.address();

// JWT access tokens: the signing key and one resource server that every
// token is issued for (resourceIndicators is how oidc-provider chooses the
// access token format).  Without "jwt": opaque tokens, the dev keystore.
let jwks;
let resourceIndicators = { enabled: false };
if (config.jwt) {
  const { key, kid, resource } = config.jwt;
  if (!key || !kid || !resource) usage('"jwt" needs "key", "kid" and "resource"');
  const jwk = createPrivateKey(readFileSync(key)).export({ format: 'jwk' });
  if (jwk.kty !== 'RSA') usage(`${key}: not an RSA key`);
  jwks = { keys: [{ ...jwk, kid, use: 'sig', alg: 'RS256' }] };
  resourceIndicators = {
    enabled: true,
    async defaultResource(ctx, client, oneOf) {
      return oneOf || resource;
    },
    // Any absolute URI is a resource server here (a test can ask for a
    // token meant for another one); the scopes are the ones clients have.
    async getResourceServerInfo(ctx, indicator) {
      return {
        scope: [...allScopes].join(' '),
        audience: indicator,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      };
    },
  };
}

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients,
  jwks,
  scopes: [...allScopes],
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators,
  },
  ttl: {
    ClientCredentials(ctx, token, client) {
      const info = clientInfo.get(client.clientId);
      return info ? info.ttl : 3600;
    },
    AccessToken(ctx, token, client) {
      const info = clientInfo.get(client.clientId);
      return info ? info.ttl : 3600;
    },
  },
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  rotateRefreshToken() {
    return true;
  },
  // "token_length": N in a client's config makes its opaque access tokens
  // N characters long (6 bits a character), as long as Microsoft's JWTs
  // (issue 3: POP3 AUTH with a token that cannot fit the 255-octet line).
  formats: {
    bitsOfOpaqueRandomness(ctx, token) {
      const info = token.clientId && clientInfo.get(token.clientId);
      return info && info.token_length ? info.token_length * 6 : 256;
    },
    customizers: {
      // Dovecot 2.3 refuses a JWT whose header typ is not "JWT" (RFC
      // 9068's "at+jwt" included); Microsoft's access tokens say "JWT".
      async jwt(ctx, token, jwt) {
        jwt.header = { ...jwt.header, typ: 'JWT' };
      },
    },
  },
  async extraTokenClaims(ctx, token) {
    if (token.accountId) return { mail_user: token.accountId };
    const info = clientInfo.get(token.clientId);
    return { mail_user: `*@${info ? info.domain : domain}` };
  },
  async findAccount(ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },
});
provider.proxy = false;

// Read a form body ourselves so it can be rewritten; oidc-provider then uses
// ctx.req.body (its documented fallback for an upstream parser).
async function readForm(ctx) {
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  return parseQuery(Buffer.concat(chunks).toString('utf8'));
}

// The client id of a token request: form field or Basic credentials.
function requestClientId(ctx, form) {
  if (form.client_id) return String(form.client_id);
  const h = ctx.get('authorization');
  const m = /^Basic\s+(.+)$/i.exec(h || '');
  if (!m) return undefined;
  const dec = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = dec.indexOf(':');
  return decodeURIComponent(colon >= 0 ? dec.slice(0, colon) : dec);
}

provider.use(async (ctx, next) => {
  const tenantPath = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(ctx.path);
  let tenant;
  if (tenantPath) {
    tenant = decodeURIComponent(tenantPath[1]);
    if (!tenants.has(tenant)) {
      log(`TOKEN tenant=${tenant} status=400 error=invalid_request (unknown tenant)`);
      ctx.status = 400;
      ctx.body = {
        error: 'invalid_request',
        error_description: `AADSTS90002: Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID.`,
      };
      return;
    }
    ctx.path = '/token';
  }

  if (ctx.method === 'POST' && ctx.path === '/token') {
    const form = await readForm(ctx);
    const clientId = requestClientId(ctx, form);
    const info = clientId && clientInfo.get(clientId);
    const scopes = String(form.scope || '').split(' ').filter(Boolean);
    if (info && scopes.includes(MS_DEFAULT_SCOPE)) {
      form.scope = info.scope;
    }
    ctx.req.body = parseQuery(stringifyQuery(form));
    await next();
    // The test server logs the token itself: the tests grep pullmail's
    // output for it.
    const extra = ctx.status === 200
      ? `scope="${ctx.body && ctx.body.scope}" access_token=${ctx.body && ctx.body.access_token} new_rt=${fp(ctx.body && ctx.body.refresh_token)}`
      : `error=${ctx.body && ctx.body.error}`;
    log(`TOKEN client=${clientId} tenant=${tenant || '-'} grant=${form.grant_type} requested_scope="${scopes.join(' ')}" status=${ctx.status} ${extra} rt=${fp(form.refresh_token)}`);
    // Test server only: every secret of the exchange in full (refresh
    // tokens issued and sent, authorization code, PKCE verifier, device
    // code, client assertion) so the tests can check that none of them
    // reaches pullmail's output.
    const issuedRt = ctx.status === 200 && ctx.body && ctx.body.refresh_token;
    log(`SECRETS client=${clientId} grant=${form.grant_type} issued_rt=${issuedRt || '-'} rt_sent=${form.refresh_token || '-'} code=${form.code || '-'} code_verifier=${form.code_verifier || '-'} device_code=${form.device_code || '-'} client_assertion=${form.client_assertion || '-'}`);
    return;
  }

  if (ctx.method === 'POST' && ctx.path === '/token/introspection') {
    await next();
    const b = ctx.body || {};
    log(`INTROSPECT status=${ctx.status} active=${b.active} client=${b.client_id || '-'} scope="${b.scope || ''}"`);
    return;
  }

  await next();
  log(`REQUEST ${ctx.method} ${ctx.path} status=${ctx.status}`);
  // An authorization code on its way to the client (test server only).
  const location = ctx.response.get('location') || '';
  const code = /[?&]code=([^&#]+)/.exec(location);
  if (code) log(`SECRETS issued_code=${decodeURIComponent(code[1])}`);
});

provider.on('server_error', (ctx, err) => log(`SERVER_ERROR ${err && err.stack}`));

handler = provider.callback();
if (opts['port-file']) writeFileSync(opts['port-file'], `${port}\n`);
log(`LISTEN 127.0.0.1:${port}`);

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    process.exit(0);
  });
}
