// A real OpenID provider (oidc-provider) on loopback for Hangar's JWT authorizer tests.
//
//   node provider.mjs --port 0 --state DIR/state.json --config DIR/clients.json
//
// Prints one line `{"issuer": ..., "port": ...}` on stdout once it listens. Tokens come from
// the provider's own token endpoint (client_credentials with a resource indicator: a JWT
// access token with iss, aud = the resource, client_id, scope, sub, iat, exp, jti, plus the
// client's extra claims from the config). The signing keys live in the state file, so a
// restarted provider (an outage) serves the same keys.
//
// Test-only routes, under /_test/ (loopback only):
//   POST /_test/rotate {"keep_old": bool}  new RS256 signing key (new kid), old one kept in
//                                          the JWKS or dropped; persisted
//   POST /_test/sign {"claims": {...}, "header": {...}}  signs arbitrary claims with the
//                                          current signing key, for the time/issuer edge cases
//                                          a token endpoint will not produce
import fs from 'node:fs';
import http from 'node:http';
import Provider from 'oidc-provider';
import * as jose from 'jose';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const statePath = arg('state');
const config = JSON.parse(fs.readFileSync(arg('config'), 'utf8'));
let state = statePath && fs.existsSync(statePath)
  ? JSON.parse(fs.readFileSync(statePath, 'utf8'))
  : { keys: [], port: Number(arg('port', '0')) };

async function newKey() {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: `k-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`, alg: 'RS256', use: 'sig' };
}

function save() {
  if (statePath) fs.writeFileSync(statePath, JSON.stringify(state));
}

if (state.keys.length === 0) {
  state.keys.push(await newKey());
}

let provider;
let issuer;

function build() {
  const clients = config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: c.scope,
    token_endpoint_auth_method: 'client_secret_post',
  }));
  const claimsByClient = Object.fromEntries(config.clients.map((c) => [c.client_id, c.claims || {}]));
  provider = new Provider(issuer, {
    clients,
    jwks: { keys: state.keys },
    cookies: { keys: ['hangar-e2e-cookie-key'] },
    scopes: config.scopes,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resource) => ({
          scope: config.scopes.join(' '),
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 300,
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    extraTokenClaims: async (_ctx, token) => claimsByClient[token.clientId],
  });
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));
}

async function readJson(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return body ? JSON.parse(body) : {};
}

const server = http.createServer(async (req, res) => {
  try {
    if (req.method === 'POST' && req.url === '/_test/rotate') {
      const { keep_old: keepOld } = await readJson(req);
      const key = await newKey();
      state.keys = keepOld ? [key, ...state.keys] : [key];
      save();
      build();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kid: key.kid }));
      return;
    }
    if (req.method === 'POST' && req.url === '/_test/sign') {
      const { claims, header } = await readJson(req);
      const jwk = state.keys[0];
      const key = await jose.importJWK(jwk, 'RS256');
      const token = await new jose.CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
        .setProtectedHeader({ alg: 'RS256', kid: jwk.kid, typ: 'at+jwt', ...(header || {}) })
        .sign(key);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token }));
      return;
    }
    provider.callback()(req, res);
  } catch (e) {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(String(e));
  }
});

server.listen(state.port, '127.0.0.1', () => {
  const { port } = server.address();
  state.port = port;
  issuer = `http://127.0.0.1:${port}`;
  save();
  build();
  console.log(JSON.stringify({ issuer, port }));
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
