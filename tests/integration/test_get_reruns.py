#!/usr/bin/env python3
"""get across reruns with changing options and interrupted operations: the cases a
review found where get returned a key without the Deployment scopes, deleted an
instance whose create was still running, or wedged after a failed update."""
import json
import os
import tempfile

from itest import Suite, run   # puts tests/fakebtp on sys.path
from harness import FakeBTP

S = Suite("get-reruns")
ENV = {"CALMBIND_POLL_INTERVAL": "0.05"}
TMP = tempfile.mkdtemp()


def get(fake, *args, timeout="60"):
    out = os.path.join(TMP, "k%d.json" % len(os.listdir(TMP)))
    rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--out", out, "--timeout", timeout] + list(args), env=ENV)
    return rc, out, err


def verify(path):
    rc, out, err = run(["verify", path], env=ENV)
    return rc, out + err


def mutations(fake, since=0):
    return [(m["method"], m["path"].split("/")[2] if m["path"].count("/") >= 2 else m["path"])
            for m in fake.mutations()[since:]]


with FakeBTP(preset="mid-2023") as fake:
    rc, k1, err = get(fake, "--update-instance", "SAPCloudALMAPIs-auto")
    S.eq("update the generated instance: exit 0", rc, 0)
    S.eq("... its new key works for Deployment", verify(k1)[0], 0)
    n = len(fake.mutations())
    rc, k2, err = get(fake, "--update-instance", "SAPCloudALMAPIs-auto", "--binding-name", "calm-api-key-auto")
    S.check("then naming the old generated key: exit 2, nothing changed",
            rc == 2 and "name a new binding" in err and len(fake.mutations()) == n, (rc, err[-300:]))
    rc, k3, err = get(fake)
    S.eq("then a plain get: exit 0", rc, 0)
    S.eq("... reuses the updated instance: no second instance, no new binding", mutations(fake, n), [])
    S.eq("... and the same key", json.load(open(k3)), json.load(open(k1)))

with FakeBTP(preset="mid-2023") as fake:
    rc, m1, err = get(fake, "--scenario", "monitoring", "--instance-name", "mon-x")
    S.eq("monitoring on a new instance: exit 0", rc, 0)
    rc, m2, err = get(fake, "--instance-name", "mon-x")
    S.eq("then deployment on the same instance: exit 0", rc, 0)
    S.check("... adds the authorities and binds anew", "mon-x-deployment-key" in err, err[-400:])
    S.eq("... the key works for Deployment", verify(m2)[0], 0)
    n = len(fake.mutations())
    rc, m3, err = get(fake, "--instance-name", "mon-x")
    S.check("... and a rerun converges", rc == 0 and len(fake.mutations()) == n
            and json.load(open(m3)) == json.load(open(m2)), (rc, mutations(fake, n)))

with FakeBTP(preset="mid-2023", https=True) as fake:
    rc, s1, err = get(fake, "--instance-name", "kinds", "--cacert", fake.ca_path)
    rc, x1, err = get(fake, "--instance-name", "kinds", "--credential-type", "x509", "--cacert", fake.ca_path)
    key = json.load(open(x1)) if rc == 0 else {}
    S.check("x509 after a secret key: not the secret key", rc != 0 or
            key.get("uaa", {}).get("credential-type") == "x509", (rc, err[-300:]))

# an operation that answers "in progress" 14 times: slower than the first run's deadline
with FakeBTP(preset="before-2023-06-12", op_polls=14) as fake:
    rc, _, err = get(fake, "--cis-key", fake.cis_key_path, "--subaccount", fake.subaccount, timeout="3")
    S.eq("a create that outlives --timeout: exit 5", rc, 5)
    n = len(fake.mutations())
    rc, k, err = get(fake, "--cis-key", fake.cis_key_path, "--subaccount", fake.subaccount, timeout="30")
    muts = fake.mutations()[n:]
    S.check("the rerun waits for it instead of deleting or re-creating it",
            not any(m["method"] == "DELETE" or m["path"] == "/v1/service_instances" for m in muts),
            [(m["method"], m["path"]) for m in muts])
    calm = [i for i in fake.state()["instances"] if i["name"] == "calm-api-deployment"]
    S.check("... and ends with one ready instance and a working key",
            rc == 0 and len(calm) == 1 and verify(k)[0] == 0, (rc, len(calm), err[-300:]))

with FakeBTP(preset="mid-2023") as fake:
    fake.fault(method="PATCH", path=r"^/v1/service_instances/", action="op_fail", errors="broker exploded")
    rc, _, err = get(fake, "--update-instance", "SAPCloudALMAPIs-auto")
    S.check("a failed update: exit 1 with the broker's text", rc == 1 and "broker exploded" in err, err[-300:])
    rc, m, err = get(fake, "--scenario", "monitoring")
    S.eq("monitoring still works on that instance", rc, 0)
    rc, k, err = get(fake, "--update-instance", "SAPCloudALMAPIs-auto")
    S.check("deployment updates again and works", rc == 0 and verify(k)[0] == 0, (rc, err[-300:]))
    S.check("... and never deleted SAP's instance",
            not any(x["method"] == "DELETE" for x in fake.mutations()), "a DELETE was sent")

# usable: false (OSB instance_usable after a failed update; Service Manager shows it): the
# instance is not taken as it is; calmbind names it and stops with the steps (exit 4),
# unless it is calmbind's own and the failed update was calmbind's, which it repeats
with FakeBTP(preset="mid-2023") as fake:
    fake.fault(method="PATCH", path=r"^/v1/service_instances/", action="op_fail", errors="broker exploded",
               instance_usable=False)
    rc, _, err = get(fake, "--update-instance", "SAPCloudALMAPIs-auto")
    S.check("a failed update leaving usable: false: exit 1", rc == 1, err[-300:])
    S.check("... the fake shows usable: false", [i["usable"] for i in fake.state()["instances"]
                                                  if i["name"] == "SAPCloudALMAPIs-auto"] == [False])
    n = len(fake.mutations())
    for what, args in (("monitoring", ["--scenario", "monitoring"]),
                       ("deployment", ["--update-instance", "SAPCloudALMAPIs-auto"])):
        rc, _, err = get(fake, *args)
        S.check("usable: false, %s: exit 4 naming the instance and the steps" % what,
                rc == 4 and "SAPCloudALMAPIs-auto" in err and "usable: false" in err and "BTP cockpit" in err,
                (rc, err[-400:]))
    S.eq("usable: false: nothing changed", fake.mutations()[n:], [])

with FakeBTP(preset="before-2023-06-12") as fake:
    cis = ["--cis-key", fake.cis_key_path, "--subaccount", fake.subaccount]
    rc, _, err = get(fake, "--scenario", "monitoring", *cis)
    S.eq("calmbind's own instance (monitoring): exit 0", rc, 0)
    fake.fault(method="PATCH", path=r"^/v1/service_instances/", action="op_fail", errors="broker exploded",
               instance_usable=False)
    rc, _, err = get(fake, "--instance-name", "calm-api-monitoring", *cis)
    S.check("its update to Deployment fails, usable: false: exit 1", rc == 1, err[-300:])
    rc, k, err = get(fake, "--instance-name", "calm-api-monitoring", *cis)
    S.check("usable: false on calmbind's own instance: calmbind repeats its update and works",
            rc == 0 and verify(k)[0] == 0, (rc, err[-400:]))
    S.check("... and says the instance was unusable", "usable: false" in err, err[-600:])

S.done()
