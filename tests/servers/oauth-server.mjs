// OAuth 2.0 authorization server for pullmail's end-to-end tests.
//
// A thin wrapper around the real npm package oidc-provider: client
// credentials grant, opaque access tokens, RFC 7662 introspection (used by
// Dovecot's passdb oauth2).  Only the glue needed to look like Microsoft's
// identity platform lives here:
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
//                    "ttl": 3600, "domain": "example.test" }, ... ] }
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
  if (!c.client_id || !c.client_secret) usage('client without client_id or client_secret');
  clientInfo.set(c.client_id, {
    scope: c.scope || 'imap pop3',
    ttl: c.ttl || 3600,
    domain: c.domain || domain,
  });
  return {
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: c.scope || 'imap pop3',
    token_endpoint_auth_method:
      c.auth === 'basic' ? 'client_secret_basic' : 'client_secret_post',
  };
});

const allScopes = new Set(['imap', 'pop3']);
for (const info of clientInfo.values()) {
  for (const s of info.scope.split(' ')) if (s) allScopes.add(s);
}

const provider = new Provider(`http://127.0.0.1`, {
  clients,
  scopes: [...allScopes],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: { enabled: false },
  },
  ttl: {
    ClientCredentials(ctx, token, client) {
      const info = clientInfo.get(client.clientId);
      return info ? info.ttl : 3600;
    },
  },
  async extraTokenClaims(ctx, token) {
    const info = clientInfo.get(token.clientId);
    return { mail_user: `*@${info ? info.domain : domain}` };
  },
  async findAccount() {
    return undefined;
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
      ? `scope="${ctx.body && ctx.body.scope}" access_token=${ctx.body && ctx.body.access_token}`
      : `error=${ctx.body && ctx.body.error}`;
    log(`TOKEN client=${clientId} tenant=${tenant || '-'} grant=${form.grant_type} requested_scope="${scopes.join(' ')}" status=${ctx.status} ${extra}`);
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
});

provider.on('server_error', (ctx, err) => log(`SERVER_ERROR ${err && err.stack}`));

const server = createServer(provider.callback());
server.listen(Number(opts.port), '127.0.0.1', () => {
  const { port } = server.address();
  if (opts['port-file']) writeFileSync(opts['port-file'], `${port}\n`);
  log(`LISTEN 127.0.0.1:${port}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    process.exit(0);
  });
}
