// Preloaded by the consumer tests (node -r ./localhost.js): names under
// .localhost resolve to 127.0.0.1, as RFC 6761 asks and curl does, so the
// fake BTP's hosts (<subdomain>.authentication.localhost, ...) reach it.
// glibc resolves only "localhost" itself. Nothing else is changed.
'use strict';
const dns = require('dns');
const lookup = dns.lookup;
dns.lookup = function (host, options, callback) {
  if (typeof options === 'function') { callback = options; options = {}; }
  if (typeof options === 'number') options = { family: options };
  if (typeof host === 'string' && /(^|\.)localhost\.?$/i.test(host)) {
    if (options && options.all) return process.nextTick(callback, null, [{ address: '127.0.0.1', family: 4 }]);
    return process.nextTick(callback, null, '127.0.0.1', 4);
  }
  return lookup.call(dns, host, options, callback);
};
