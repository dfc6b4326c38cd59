#!/usr/bin/env python3
"""--provisioned auto: evidence from the cis key (subaccount and subscription dates) and from
Service Manager (generated instance, bindings); each date region, the 12-14 June window
(look, do not assume) and no evidence at all."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import itest  # noqa: E402
from harness import FakeBTP  # noqa: E402
from test_get_paths import run_get  # noqa: E402


def decision(fake, *extra, cis=False):
    rc, out, err, rep = run_get(fake, *extra, cis=cis, command="plan")
    return rc, out, (rep or {}).get("decision") or {}


def main():
    s = itest.Suite("integration/auto_detect")
    for preset, date in (("after-2023-10-16", "2024-03-05"), ("mid-2023", "2023-08-21"),
                         ("before-2023-06-12", "2022-11-14")):
        with FakeBTP(preset=preset) as fake:
            rc, out, d = decision(fake, cis=True)
            s.eq("%s with --cis-key: path" % preset, d.get("path"), preset)
            s.eq("%s with --cis-key: date from the subscription" % preset,
                 (d.get("date"), d.get("source")), (date, "subscription"))
            s.check("%s with --cis-key: prints the evidence" % preset,
                    "subscription" in out and "subaccount" in out and "because" in out, out[:600])
            rc, out, d = decision(fake)
            if preset == "before-2023-06-12":
                s.eq("before without cis: no evidence -> before-2023-06-12",
                     (d.get("path"), d.get("source")), (preset, "none"))
                s.check("before without cis: says there was no evidence", "no evidence" in out, out)
            else:
                s.eq("%s without cis: path from the generated instance" % preset,
                     (d.get("path"), d.get("source"), d.get("date")), (preset, "generated-instance", date))
    # 12 June (credentials generated) and 14 June 2023 (also uploaded to Landscape
    # Management) are two events: both dates are mid-2023; before the 14th the output
    # says to upload the key by hand
    with FakeBTP(preset="mid-2023") as fake:
        rc, out, d = decision(fake, "--provisioned", "2023-06-13")
        s.eq("2023-06-13 -> mid-2023", d.get("path"), "mid-2023")
        s.check("2023-06-13: says the key was not uploaded to Landscape Management automatically",
                "uploaded to Landscape Management" in out and "inconsistent" not in out, out)
    with FakeBTP(preset="before-2023-06-12") as fake:
        rc, out, d = decision(fake, "--provisioned", "2023-06-12")
        s.eq("2023-06-12 -> mid-2023 (generation started that day)", d.get("path"), "mid-2023")
        rc, out, d = decision(fake, "--provisioned", "2023-06-15")
        s.check("2023-06-15 is plainly mid-2023, uploaded automatically",
                d.get("path") == "mid-2023" and "uploaded to Landscape Management" not in out, out)
        rc, out, d = decision(fake, "--provisioned", "2023-10-16")
        s.eq("2023-10-16 is after-2023-10-16", d.get("path"), "after-2023-10-16")
        rc, out, d = decision(fake, "--provisioned", "2023-06-11")
        s.eq("2023-06-11 is before-2023-06-12", d.get("path"), "before-2023-06-12")
    # no evidence at all: nothing entitled, nothing created, no cis key
    with FakeBTP(preset="empty") as fake:
        rc, out, d = decision(fake)
        s.eq("empty tenant: plan exits 4, as get would (not entitled, no --cis-key)", rc, 4)
        s.eq("empty tenant: no evidence -> before-2023-06-12", (d.get("path"), d.get("source")),
             ("before-2023-06-12", "none"))
        s.check("empty tenant: prints the reasoning", "no evidence" in out, out)
    # a --subaccount that is not the Service Manager key's: exit 2 (test_cis_plans.py has more)
    with FakeBTP(preset="mid-2023") as fake:
        rc, out, err, rep = run_get(fake, "--subaccount", "00000000-0000-0000-0000-000000000000",
                                    "--cis-key", fake.cis_key_path, command="plan")
        s.eq("another subaccount than the SM key's: exit 2", rc, 2)
    s.done()


if __name__ == "__main__":
    main()
