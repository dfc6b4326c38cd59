"""The least of a Kubernetes API server that `kubectl apply --dry-run=client` needs: discovery.

kubectl maps a manifest's apiVersion/kind to a resource through the server's discovery
documents before it does anything, client dry run included, and then asks for the object
(404: it would be created). This serves exactly that, for the core group's secrets and
namespaces, on 127.0.0.1 with a kubeconfig pointing at it. It serves no OpenAPI document:
kubectl's schema validation downloads the server's, which no stub can honestly stand in
for, so the tests run kubectl with --validate=false and check the object it prints.

    from kubeapi import KubeAPI
    with KubeAPI(workdir) as k:
        env = k.env()          # KUBECONFIG and HOME for kubectl
        k.requests             # [(method, path), ...]

Shapes: the Kubernetes API reference, "API discovery" (APIVersions at /api, APIResourceList
at /api/v1, APIGroupList at /apis) and "Status" (the 404 of a missing object).
"""
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_VERSIONS = {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
CORE_V1 = {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
    {"name": "secrets", "singularName": "secret", "namespaced": True, "kind": "Secret",
     "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]},
    {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
     "shortNames": ["ns"], "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
]}
API_GROUPS = {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-fakebtp", "platform": "linux/amd64"}
DOCS = {"/api": API_VERSIONS, "/api/v1": CORE_V1, "/apis": API_GROUPS, "/version": VERSION}


def _not_found(path):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "the server could not find the requested resource (%s)" % path,
            "reason": "NotFound", "code": 404}


class KubeAPI:
    def __init__(self, workdir):
        self.workdir = workdir
        self.requests = []
        self.server = None

    def start(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?", 1)[0]
                owner.requests.append(("GET", path))
                body, status = DOCS.get(path), 200
                if body is None:
                    body, status = _not_found(path), 404
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.home = os.path.join(self.workdir, "kube-home")
        os.makedirs(self.home, exist_ok=True)
        self.kubeconfig = os.path.join(self.workdir, "kubeconfig")
        with open(self.kubeconfig, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "fake",
                       "clusters": [{"name": "fake", "cluster": {"server": "http://127.0.0.1:%d" % self.port}}],
                       "users": [{"name": "fake", "user": {}}],
                       "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake",
                                                                  "namespace": "default"}}]}, f)
        return self

    def env(self):
        return {"KUBECONFIG": self.kubeconfig, "HOME": self.home}

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
