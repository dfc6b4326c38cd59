#!/usr/bin/env python3
"""The example command in examples/ (shown in the README) works as documented."""
import os

from itest import ROOT, Suite, run   # itest puts tests/fakebtp on sys.path
from harness import FakeBTP

S = Suite("examples")
ENV = {"CALMBIND_PATH": os.path.join(ROOT, "examples")}

with FakeBTP(preset="after-2023-10-16") as fake:
    rc, out, err = run(["instances", "--sm-key", fake.sm_key_path], env=ENV)
    S.check("instances lists the generated instance", rc == 0 and "SAPCloudALMAPIs-auto" in out, out + err)
    S.check("... and not the Service Manager's own instance", "calmbind-sm" not in out, out)
    rc, out, err = run(["instances"], env=dict(ENV, CALMBIND_SM_KEY=fake.sm_key_path))
    S.check("instances reads CALMBIND_SM_KEY", rc == 0 and "SAPCloudALMAPIs-auto" in out, out + err)
with FakeBTP(preset="cf-legacy") as fake:
    rc, out, err = run(["instances", "--sm-key", fake.sm_key_path], env=ENV)
    S.check("instances marks a Cloud Foundry instance", rc == 0 and "owned by cf-" in out, out + err)
with FakeBTP(preset="before-2023-06-12") as fake:
    rc, out, err = run(["instances", "--sm-key", fake.sm_key_path], env=ENV)
    S.check("instances says when the subaccount is not entitled (exit 4)", rc == 4 and "entitled" in err, err)
rc, out, err = run(["instances"], env=ENV)
S.check("instances without a key is a usage error", rc == 2 and "--sm-key" in err, err)
S.done()
