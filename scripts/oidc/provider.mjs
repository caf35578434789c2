// The OpenID provider of the sign-in tests: panva's `oidc-provider` (an OpenID Certified
// implementation) on 127.0.0.1, with one client for DriftGuard and three static people.
//
//   node provider.mjs   (OIDC_PORT, OIDC_CLIENT_SECRET_FILE, optional OIDC_PID_FILE; prints
//                        `ready <issuer>` once it listens)
//
// - client `driftguard`: authorization code with PKCE (required by oidc-provider), secret read
//   from $OIDC_CLIENT_SECRET_FILE, `client_secret_basic`. A native client, so that its loopback
//   redirect URIs (`http://127.0.0.1/auth/oidc/callback`, `http://127.0.0.1/cb`) match on any
//   port (RFC 8252 section 7.3): each test's server picks a free one.
// - people (password: none, the login page asks only for the name):
//   alice@acme.example in group `platform`, bob@acme.example in `team-dev`,
//   carol@other.example in no group (and an e-mail domain DriftGuard's tests do not allow).
// - `email` and `groups` claims in the ID token itself (`conformIdTokenClaims: false`).
// - signing keys made at start: RS256 (the ID token's) and ES256, in the JWKS.
import * as http from 'node:http';
import * as fs from 'node:fs';
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT || 0);
const secretFile = process.env.OIDC_CLIENT_SECRET_FILE;
if (!port || !secretFile) {
  console.error('set OIDC_PORT and OIDC_CLIENT_SECRET_FILE');
  process.exit(2);
}
const clientSecret = fs.readFileSync(secretFile, 'utf8').trim();
const issuer = `http://127.0.0.1:${port}`;

const people = {
  alice: { email: 'alice@acme.example', name: 'Alice Platform', groups: ['platform'] },
  bob: { email: 'bob@acme.example', name: 'Bob Developer', groups: ['team-dev'] },
  carol: { email: 'carol@other.example', name: 'Carol Outside', groups: [] },
};

async function key(alg, kid) {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), alg, use: 'sig', kid };
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'driftguard',
    client_secret: clientSecret,
    application_type: 'native',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/auth/oidc/callback', 'http://127.0.0.1/cb'],
    post_logout_redirect_uris: ['http://127.0.0.1/login'],
  }],
  jwks: { keys: [await key('RS256', 'rs-1'), await key('ES256', 'es-1')] },
  cookies: { keys: ['driftguard-test-provider-cookie-key'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const p = people[sub];
    if (!p) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, email: p.email, email_verified: true, name: p.name, groups: p.groups };
      },
    };
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><title>Error</title><h1>Sign-in error</h1><pre>${escape(JSON.stringify(out))}</pre>`;
  },
});

function escape(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title>
<style>body{font-family:sans-serif;max-width:24rem;margin:4rem auto;color:#222}
input,button{font-size:1rem;padding:.4rem;width:100%;margin:.3rem 0;box-sizing:border-box}
button{background:#2c5fbd;color:#fff;border:0;border-radius:4px}</style></head>
<body><h1>${title}</h1>${body}</body></html>`;
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.on('data', (c) => { data += c; if (data.length > 10000) reject(new Error('too long')); });
    req.on('end', () => resolve(new URLSearchParams(data)));
    req.on('error', reject);
  });
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  const { prompt, params, session } = details;
  if (prompt.name === 'login') {
    if (req.method === 'POST' && action === 'login') {
      const form = await readForm(req);
      const who = (form.get('login') || '').trim();
      if (!people[who]) {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(page('Sign in to the test provider', `<p id="error">No such person: ${escape(who)}</p>${loginForm(uid)}`));
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId: who } });
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(page('Sign in to the test provider', loginForm(uid)));
    return;
  }
  if (prompt.name === 'consent') {
    // the test provider consents for its people: every scope and claim asked for
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  throw new Error(`unknown prompt ${prompt.name}`);
}

function loginForm(uid) {
  return `<p>alice (platform), bob (team-dev) or carol (no group).</p>
<form method="post" action="/interaction/${uid}/login" autocomplete="off">
<label for="login">Name</label><input id="login" name="login" required autofocus>
<button id="submit" type="submit">Sign in</button></form>`;
}

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  const m = req.url.match(/^\/interaction\/([\w-]+)(?:\/(login))?$/);
  if (m) {
    try {
      await interaction(req, res, m[1], m[2]);
    } catch (e) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(`interaction failed: ${e.message}`);
    }
    return;
  }
  callback(req, res);
});
server.listen(port, '127.0.0.1', () => {
  // the process's own pid, for stop.sh (setsid may fork, so `$!` need not be this process)
  if (process.env.OIDC_PID_FILE) fs.writeFileSync(process.env.OIDC_PID_FILE, `${process.pid}\n`);
  console.log(`ready ${issuer}`);
});
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => server.close(() => process.exit(0)));
