"""Tenants of the fake BTP: one subaccount each (state, OAuth clients, CF users, preset).

Single-tenant mode (the default) has one tenant and changes nothing on the wire.
Multi-tenant mode (`--tenants N`) serves N subaccounts behind the one port. A request
belongs to a tenant by, in this order:

  1. a path prefix `/t/<name>/...` (stripped before routing), or
  2. its host: `<name>.authentication.localhost`, `<name>.authentication.cert.localhost`,
     `<name>.eu10.alm.localhost` (the per-subaccount hosts of real BTP).

Regional hosts (Service Manager, CF, the cis services) are shared in real BTP and tell the
subaccount from the token; here every URL a tenant hands out (key files, Location and Link
headers, CF hrefs) carries its `/t/<name>` prefix, and a token presented to another tenant
is refused (401 invalid_token), as a token of another identity zone is.
"""
import json
import os
import threading

TENANT_HOST_SUFFIXES = (".authentication.cert.localhost", ".authentication.localhost",
                        ".eu10.alm.localhost")


class Tenant:
    def __init__(self, name, preset, multi):
        self.name = name
        self.preset = preset
        self.prefix = "/t/" + name if multi else ""
        self.subdomain = name if multi else None     # None: the core picks a random one
        self.state = {"subaccount": {}, "entitled": False, "instances": {}, "bindings": {},
                      "operations": {}}
        self.users = {}
        self.clients = {}


class Registry:
    """The tenants of one App and the tenant of the running thread."""

    def __init__(self, preset):
        self.multi = False
        self.by_name = {}
        self.default = Tenant("default", preset, False)
        self._tl = threading.local()

    def current(self):
        return getattr(self._tl, "tenant", None) or self.default

    def use(self, tenant):
        self._tl.tenant = tenant

    def create(self, count, presets):
        """Multi-tenant mode: `count` tenants t0001.., presets cycled over them."""
        self.multi = True
        width = max(4, len(str(count)))
        for i in range(count):
            name = "t%0*d" % (width, i + 1)
            self.by_name[name] = Tenant(name, presets[i % len(presets)], True)
        self.default = next(iter(self.by_name.values()))
        return list(self.by_name.values())

    def url_suffix(self, host):
        """The path prefix URLs for `host` carry in the current tenant ("" for its own hosts)."""
        t = self.current()
        if not t.prefix or host.startswith(t.name + "."):
            return ""
        return t.prefix

    def resolve(self, req):
        """Select the request's tenant (strips a /t/<name> prefix); False if it names none."""
        if not self.multi:
            self.use(self.default)
            return True
        if req.path.startswith("/t/"):
            name, _, rest = req.path[3:].partition("/")
            t = self.by_name.get(name)
            if t is None:
                return False
            req.path = "/" + rest
        else:
            t = self.default
            for suffix in TENANT_HOST_SUFFIXES:
                if req.host.endswith(suffix):
                    t = self.by_name.get(req.host[: -len(suffix)], t)
                    break
        req.tenant = t.name
        self.use(t)
        return True


def add_args(p, presets):
    p.add_argument("--tenants", type=int, default=0,
                   help="multi-tenant mode: N subaccounts behind the one port (0: single)")
    p.add_argument("--tenant-presets", default=None,
                   help="comma-separated presets cycled over the tenants (default: --preset); "
                        "one of " + ", ".join(presets))
    p.add_argument("--tenant-x509", action="store_true",
                   help="also issue each tenant an X.509 SM key (one RSA key per tenant: slow)")


def check_args(p, args, presets):
    if args.tenants < 0:
        p.error("--tenants must be >= 0")
    names = (args.tenant_presets or args.preset).split(",")
    for n in names:
        if n not in presets:
            p.error("--tenant-presets: unknown preset %r (one of %s)" % (n, ", ".join(presets)))
    if args.tenant_presets and not args.tenants:
        p.error("--tenant-presets needs --tenants N")
    return names


def setup(app, state_dir, init_state, modules):
    """Initialise and write out every tenant (the first one's state is made by the modules'
    register); the first one is also written to state_dir itself, so single-tenant clients
    keep working."""
    tenants = list(app.tenants.by_name.values())
    index = []
    for i, t in enumerate(tenants):
        app.tenants.use(t)
        if i > 0:
            init_state(app)
        tdir = os.path.join(state_dir, "tenants", t.name)
        os.makedirs(tdir, exist_ok=True)
        for mod in modules:
            if hasattr(mod, "apply_preset"):
                mod.apply_preset(app, t.preset)
        for mod in modules:
            if hasattr(mod, "write_files"):
                mod.write_files(app, tdir)
        if i == 0:
            for mod in modules:
                if hasattr(mod, "write_files"):
                    mod.write_files(app, state_dir)
        index.append(describe(app, t, tdir))
    app.tenants.use(tenants[0])
    from fakebtp import write_json
    write_json(os.path.join(state_dir, "tenants.json"), {"tenants": index}, 0o644)


def describe(app, t, tdir):
    sub = t.state["subaccount"]
    files = {}
    for field, fname in (("sm_key", "sm-key.json"), ("sm_key_x509", "sm-key-x509.json"),
                         ("cis_key", "cis-key.json"), ("cf_env", "cf.env")):
        path = os.path.join(tdir, fname)
        if os.path.exists(path):
            files[field] = path
    out = {"name": t.name, "subdomain": sub.get("subdomain"), "subaccount": sub.get("id"),
           "preset": t.preset, "dir": tdir, "url_prefix": t.prefix}
    out.update(files)
    return out


def load_index(state_dir):
    with open(os.path.join(state_dir, "tenants.json")) as f:
        return json.load(f)["tenants"]
