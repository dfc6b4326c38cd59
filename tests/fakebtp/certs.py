"""Test CA, server certificate and client certificates for fakebtp, via the openssl CLI."""
import os
import secrets
import ssl
import subprocess
import tempfile
import threading

SERVER_SANS = [
    "DNS:localhost", "DNS:*.localhost",
    "DNS:service-manager.localhost",
    "DNS:*.authentication.localhost", "DNS:*.authentication.cert.localhost",
    "DNS:*.eu10.alm.localhost",
    "DNS:api.cf.localhost", "DNS:login.cf.localhost", "DNS:uaa.cf.localhost",
    "DNS:accounts-service.localhost", "DNS:entitlements-service.localhost",
    "DNS:saas-manager.localhost",
    "IP:127.0.0.1",
]

OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = %(sans)s
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
"""


def _run(args, cwd):
    p = subprocess.run(["openssl"] + args, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], p.stderr.decode(errors="replace")))
    return p.stdout


class CA:
    """ca.pem/ca.key, server.pem/server.key in the state dir; issues client certs."""

    def __init__(self, state_dir, extra_sans=()):
        self.dir = state_dir
        self.ca_pem = os.path.join(state_dir, "ca.pem")
        self.ca_key = os.path.join(state_dir, "ca.key")
        self.server_pem = os.path.join(state_dir, "server.pem")
        self.server_key = os.path.join(state_dir, "server.key")
        self.cnf = os.path.join(state_dir, "openssl.cnf")
        self.sans = SERVER_SANS + ["DNS:" + s for s in extra_sans]
        self.lock = threading.Lock()

    def create(self):
        with open(self.cnf, "w") as f:
            f.write(OPENSSL_CNF % {"sans": ",".join(self.sans)})
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _run(["req", "-x509", "-config", self.cnf, "-extensions", "ca_ext"] + ec +
             ["-keyout", self.ca_key, "-out", self.ca_pem, "-days", "30",
              "-subj", "/O=fakebtp/CN=fakebtp test CA"], self.dir)
        csr = os.path.join(self.dir, "server.csr")
        _run(["req", "-new", "-config", self.cnf] + ec +
             ["-keyout", self.server_key, "-out", csr, "-subj", "/O=fakebtp/CN=localhost"], self.dir)
        _run(["x509", "-req", "-in", csr, "-CA", self.ca_pem, "-CAkey", self.ca_key,
              "-set_serial", "0x" + secrets.token_hex(8), "-days", "30",
              "-extfile", self.cnf, "-extensions", "server_ext", "-out", self.server_pem], self.dir)
        os.unlink(csr)
        os.chmod(self.ca_key, 0o600)
        os.chmod(self.server_key, 0o600)

    def server_context(self, client_auth=False):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.server_pem, self.server_key)
        if client_auth:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.ca_pem)
        return ctx

    def issue_client(self, cn, days=7, org="fakebtp clients"):
        """A client certificate (PEM) and its RSA private key (PEM) with subject CN=cn.

        Returns (cert_pem, key_pem, cert_der)."""
        with self.lock, tempfile.TemporaryDirectory(dir=self.dir) as tmp:
            key = os.path.join(tmp, "c.key")
            csr = os.path.join(tmp, "c.csr")
            crt = os.path.join(tmp, "c.pem")
            der = os.path.join(tmp, "c.der")
            _run(["req", "-new", "-config", self.cnf, "-newkey", "rsa:2048", "-nodes",
                  "-keyout", key, "-out", csr,
                  "-subj", "/C=DE/O=SAP SE/OU=%s/L=fakebtp/CN=%s" % (org, cn)], tmp)
            _run(["x509", "-req", "-in", csr, "-CA", self.ca_pem, "-CAkey", self.ca_key,
                  "-set_serial", "0x" + secrets.token_hex(8), "-days", str(max(1, int(days))),
                  "-extfile", self.cnf, "-extensions", "client_ext", "-out", crt], tmp)
            _run(["x509", "-in", crt, "-outform", "DER", "-out", der], tmp)
            with open(crt) as f:
                cert_pem = f.read()
            with open(key) as f:
                key_pem = f.read()
            with open(der, "rb") as f:
                cert_der = f.read()
            with open(self.ca_pem) as f:
                chain = cert_pem + f.read()
        return chain, key_pem, cert_der

    def public_key_pem(self):
        """A PEM public key text (the CA's) to use as a fake 'verificationkey'."""
        if getattr(self, "_pub", None) is None:
            self._pub = _run(["pkey", "-in", self.ca_key, "-pubout"], self.dir).decode()
        return self._pub
