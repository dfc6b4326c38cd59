-- tests/lua/test_url.lua: calm.url, URLs over libcurl's URL API: parse (odd
-- hosts, ports, percent-encoding, user names refused, fragments), build,
-- join and query.
local t = ...
local url = require "calm.url"
local T = {}

local function refused(s, why, code)
  local u, msg, c = url.parse(s)
  t.eq(u, nil, s)
  t.eq(msg, why, s)
  t.eq(c, code or "BAD_URL", s)
end

function T.parse_parts()
  local u = assert(url.parse("HTTPS://Example.COM:8443/a/%41b?x=1&y=%20#frag"))
  t.eq(u.scheme, "https")
  t.eq(u.host, "example.com")
  t.eq(u.port, 8443)
  t.eq(u.path, "/a/%41b")
  t.eq(u.query, "x=1&y=%20")
  t.eq(u.fragment, "frag")
  t.eq(u.origin, "https://example.com:8443")
  t.eq({ u.ip, u.loopback, u.userinfo }, { false, false, nil })
  -- no path is "/", no port is nil, no query or fragment is nil
  u = assert(url.parse("https://h.example"))
  t.eq({ u.path, u.port, u.query, u.fragment, u.origin }, { "/", nil, nil, nil, "https://h.example" })
  -- an empty port is no port; leading zeros are the number
  t.eq(assert(url.parse("https://h:/x")).port, nil)
  t.eq(assert(url.parse("https://h:0443/x")).port, 443)
  -- dot segments are resolved as libcurl sends them
  t.eq(assert(url.parse("https://h/a/../b/./c")).path, "/b/c")
end

function T.parse_ip_hosts()
  local u = assert(url.parse("https://[::1]:99/x"))
  t.eq({ u.host, u.port, u.ip, u.loopback, u.origin }, { "[::1]", 99, true, true, "https://[::1]:99" })
  u = assert(url.parse("http://[2001:DB8::7]/"))
  t.eq({ u.host, u.ip, u.loopback }, { "[2001:db8::7]", true, false })
  u = assert(url.parse("http://127.0.0.1:8080/"))
  t.eq({ u.host, u.ip, u.loopback }, { "127.0.0.1", true, true })
  t.eq(assert(url.parse("http://calm.authentication.localhost/")).loopback, true)
  t.eq(assert(url.parse("http://localhost.example/")).loopback, false)
  refused("https://[::1/", "has an invalid host name")
  refused("https://[1:2:3:4:5:6:7:8:9]/", "has an invalid host name")
  -- a zone id names an interface of this machine: no BTP host has one
  refused("https://[fe80::1%25eth0]/", "has an invalid host name")
end

function T.parse_refusals()
  refused("h.example/x", "is not an absolute URL", "NOT_URL")
  refused("", "is not an absolute URL", "NOT_URL")
  refused("-----BEGIN CERTIFICATE-----\nMII", "is not an absolute URL", "NOT_URL")
  refused("https:///x", "has no host")
  refused("https://", "has no host")
  refused("https://user:pw@h/x", "must not carry a user name or password")
  refused("https://user@h/x", "must not carry a user name or password")
  refused("https://h:0/", "has an invalid port")
  refused("https://h:65536/", "has an invalid port")
  refused("https://h:-1/", "has an invalid port")
  refused("https://h:x/", "has an invalid port")
  refused("https://h_x/", "has an invalid host name")
  refused("https://-h/", "has an invalid host name")
  refused("https://h./", "has an invalid host name")
  refused("https://a..b/", "has an invalid host name")
  refused("https://h/a b", "contains spaces or non-ASCII characters")
  refused("https://h/\195\164", "contains spaces or non-ASCII characters")
  refused("https://h/x\n", "contains a line break or control character")
  refused("https://h/%zz", "has a bad percent-encoding (% not followed by two hex digits)")
  refused("https://h/%4", "has a bad percent-encoding (% not followed by two hex digits)")
  refused("https://h/x?a=%g1", "has a bad percent-encoding (% not followed by two hex digits)")
  refused("https://h/$(id)", "has characters a URL path does not carry")
  refused('https://h/"q"', "has characters a URL path does not carry")
  refused('https://h/x?q="a"', "has characters a URL query does not carry")
  -- a query may hold RFC 3986's sub-delims (SM's field queries, CF's lists)
  t.eq(assert(url.parse("https://h/x?q=name%20eq%20'a'&n=a,b")).query, "q=name%20eq%20'a'&n=a,b")
end

-- a proxy setting: user and password accepted and dropped, host:port is http
function T.parse_proxy_settings()
  local u = assert(url.parse("http://alice:s3cret@proxy.corp:3128", { userinfo = true }))
  t.eq({ u.host, u.port, u.userinfo }, { "proxy.corp", 3128, true })
  for _, v in pairs(u) do t.nofind(tostring(v), "s3cret") end
  u = assert(url.parse("proxy.corp:3128", { default_scheme = "http" }))
  t.eq({ u.scheme, u.host, u.port }, { "http", "proxy.corp", 3128 })
  t.raises(function() url.parse("x", { default_scheme = "ftp" }) end, "default_scheme")
end

function T.build()
  t.eq(url.build { scheme = "https", host = "h", port = 8443, path = "/api", query = { a = "1 2" } },
    "https://h:8443/api?a=1%202")
  t.eq(url.build { scheme = "https", host = "[::1]", path = "/x%2Cy" }, "https://[::1]/x%2Cy")
  t.eq(url.build { scheme = "https", host = "h" }, "https://h/")
  t.eq(url.build { scheme = "https", host = "h", path = "/p", query = "a=b", fragment = "f" }, "https://h/p?a=b#f")
  local function no(parts, why)
    local s, msg = url.build(parts)
    t.eq({ s, msg }, { nil, why })
  end
  no({ scheme = "https", host = "h/evil" }, "has an invalid host name")
  no({ scheme = "https", host = "u@h" }, "has an invalid host name")
  no({ scheme = "https", host = "h", port = 0 }, "has an invalid port")
  no({ scheme = "https", host = "h", path = "x" }, "has a path that does not start with /")
  no({ scheme = "https", host = "h", path = "/$(x)" }, "has characters a URL path does not carry")
  no({ scheme = "https" }, "needs a scheme and a host")
  t.raises(function() url.build { scheme = 1, host = "h" } end, "'scheme' must be a string")
end

function T.join()
  t.eq(url.join("https://h/api/", "/v1/x"), "https://h/api/v1/x")
  t.eq(url.join("https://h/api", "v1/x"), "https://h/api/v1/x")
  t.eq(url.join("https://h", "/v1/x"), "https://h/v1/x")
  t.eq(url.join("https://h//", "//x"), nil)
  t.eq(url.join("https://h/", ""), "https://h/")
  t.eq(url.join("https://h/base/", ""), "https://h/base")
  -- the path's own query, then the one given, joined by '&'
  t.eq(url.join("https://h", "/v1/x?max_items=2", { token = "a b" }), "https://h/v1/x?max_items=2&token=a%20b")
  t.eq(url.join("https://h", "/v1/x", "a=1"), "https://h/v1/x?a=1")
  t.eq(url.join("https://h:8443/sm", "v1/x", {}), "https://h:8443/sm/v1/x")
  -- an absolute URL stands for itself (a next-page link, a Location)
  t.eq(url.join("https://h/base", "https://other.example/v3/x?page=2", { per_page = 50 }),
    "https://other.example/v3/x?page=2&per_page=50")
  local function no(base, path, why)
    local s, msg = url.join(base, path)
    t.eq({ s, msg }, { nil, why }, base .. " + " .. path)
  end
  no("https://h/base", "../x", "must not have '.' or '..' segments")
  no("https://h/base", "a/./b", "must not have '.' or '..' segments")
  no("https://h/base", "x#frag", "must not have a fragment")
  no("https://h/base", "//evil.example/x", "must be a path, not //host")
  no("https://h/base?q=1", "x", "must not have a query or fragment")
  no("https://u:p@h/", "x", "must not carry a user name or password")
  no("not a url", "x", "is not an absolute URL")
  no("https://h", "https://u:p@evil/", "must not carry a user name or password")
  no("https://h", "/a b", "is not a valid URL")
end

function T.query()
  t.eq(url.query {}, "")
  t.eq(url.query { b = "2", a = "1", A = "0" }, "A=0&a=1&b=2")   -- keys sorted bytewise
  t.eq(url.query { q = "name eq 'a&b'" }, "q=name%20eq%20%27a%26b%27")
  t.eq(url.query { ["k y"] = "\195\169=/?#+" }, "k%20y=%C3%A9%3D%2F%3F%23%2B")
  t.eq(url.query { n = 5, f = 1.5, on = true, off = false }, "f=1.5&n=5&off=false&on=true")
  t.eq(url.query { names = { "a b", "c,d", 7 } }, "names=a%20b,c%2Cd,7")
  t.eq(url.query { names = {} }, "names=")
  t.raises(function() url.query { x = function() end } end, "value of 'x' must be")
  t.raises(function() url.query { x = { {} } } end, "value of 'x' must be")
  t.raises(function() url.query { [1] = "a" } end, "keys must be strings")
end

return T
