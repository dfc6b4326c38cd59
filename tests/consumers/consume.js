// tests/consumers/consume.js MODE [ARG]: reads calmbind's output the way a
// real consumer does and takes a token with it; prints one JSON line
// {"token": ..., "url": ..., ...}. Run by tests/integration/test_consumers.py.
//   vcap-xsenv       @sap/xsenv finds the SAPCloudALMAPIs entry in VCAP_SERVICES,
//                    @sap/xssec takes a client-credentials token with its uaa part
//   vcap-sdk NAME    @sap-cloud-sdk/connectivity: getDestination({destinationName: NAME})
//                    (the xsuaa entry), and serviceToken('xsuaa')
//   env              the CALM_* variables (sh `. file`, or node --env-file for dotenv),
//                    @sap/xssec takes a token with them
//   mounted          @sap/xsenv reads a Secret mounted under SERVICE_BINDING_ROOT,
//                    @sap/xssec takes a token with its uaa part
'use strict';
const xsenv = require('@sap/xsenv');
const xssec = require('@sap/xssec');

async function xssecToken(creds) {
  const service = new xssec.XsuaaService(creds);
  const t = await service.fetchClientCredentialsToken();
  return t.access_token;
}

const modes = {
  async 'vcap-xsenv'() {
    const { calm } = xsenv.getServices({ calm: { label: 'SAPCloudALMAPIs' } });
    return { token: await xssecToken(calm.uaa), url: calm.endpoints.Api };
  },
  async 'vcap-sdk'(name) {
    // loaded here: the other modes do not need its start-up time
    const sdk = require('@sap-cloud-sdk/connectivity');
    const dest = await sdk.getDestination({ destinationName: name, useCache: false });
    const viaLabel = await sdk.serviceToken('xsuaa', { useCache: false });
    const auth = (dest.authTokens || [])[0] || {};
    return { token: auth.value, url: dest.url, authentication: dest.authentication,
             name: dest.name, label_token: viaLabel };
  },
  async env() {
    const e = process.env;
    const creds = { clientid: e.CALM_CLIENT_ID, url: e.CALM_UAA_URL };
    if (e.CALM_CLIENT_CERTIFICATE) {
      Object.assign(creds, { certificate: e.CALM_CLIENT_CERTIFICATE, key: e.CALM_CLIENT_KEY, certurl: e.CALM_CERT_URL });
    } else {
      creds.clientsecret = e.CALM_CLIENT_SECRET;
    }
    const vars = {};
    for (const k of Object.keys(e).filter(k => k.startsWith('CALM_')).sort()) vars[k] = e[k];
    delete vars.CALM_CLIENT_SECRET; delete vars.CALM_CLIENT_KEY; delete vars.CALM_CLIENT_CERTIFICATE;
    return { token: await xssecToken(creds), url: e.CALM_API_URL, vars };
  },
  async mounted() {
    const list = xsenv.filterServices({ label: 'SAPCloudALMAPIs' });
    if (list.length !== 1) throw new Error(`found ${list.length} mounted SAPCloudALMAPIs bindings`);
    const b = list[0];
    return { token: await xssecToken(b.credentials.uaa), url: b.credentials.endpoints.Api,
             name: b.name, type: b.type, plan: b.plan };
  },
};

const [mode, arg] = process.argv.slice(2);
if (!modes[mode]) {
  console.error(`consume.js: unknown mode ${mode}`);
  process.exit(2);
}
modes[mode](arg).then(out => {
  process.stdout.write(JSON.stringify(out) + '\n');
}, err => {
  console.error(`consume.js ${mode}: ${err && err.stack || err}`);
  if (err && err.cause) console.error(`cause: ${err.cause.stack || err.cause}`);
  process.exit(1);
});
