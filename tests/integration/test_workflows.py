#!/usr/bin/env python3
"""The documented CI workflows run as written: the GitHub Actions jobs of the README and
docs/commands.md, their `run:` lines taken from the text (each matrix value filled in), run
by a shell in a fresh directory (a CI job's checkout: the inventory and its key files, no
out/), against the multi-tenant fake. Each must exit 0 and, over the matrix, write every
tenant's key exactly once, and leave the report files the artifact steps upload."""
import csv
import os
import re
import shutil
import stat
import subprocess
import tempfile

from itest import CALMBIND, ROOT, Suite
from harness import FakeBTP

S = Suite("workflows")
TMP = tempfile.mkdtemp(prefix="workflows-")


def yaml_blocks(path):
    text = open(os.path.join(ROOT, path)).read()
    return [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "calmbind" in b]


def csv_header(path):
    """The inventory columns the document's own CSV example uses."""
    text = open(os.path.join(ROOT, path)).read()
    blocks = re.findall(r"```csv\n(.*?)```", text, re.S)
    return blocks[0].splitlines()[0].split(",") if blocks else ["name", "sm_key"]


def matrix(block):
    """{"shard": ["1", "2", ...]} from `matrix: { shard: [1, 2, 3, 4] }` (flow or block style)."""
    m = re.search(r"matrix:\s*\{\s*(\w+):\s*\[([^\]]*)\]", block) or \
        re.search(r"matrix:\s*\n\s*(\w+):\s*\[([^\]]*)\]", block)
    if not m:
        return {}
    return {m.group(1): [v.strip() for v in m.group(2).split(",") if v.strip()]}


def run_lines(block):
    out = []
    for line in block.splitlines():
        m = re.match(r"\s*-?\s*run:\s*(.+)$", line)
        if m:
            out.append(m.group(1).strip())
    return out


def artifact_paths(block):
    return re.findall(r"path:\s*((?:\$\{\{[^}]*\}\}|[^\s,}])+)", block)


def fill(text, var, value):
    return re.sub(r"\$\{\{\s*matrix\.%s\s*\}\}" % re.escape(var), value, text)


def checkout(fake, header, where):
    """A fresh job directory: tenants.csv in the document's columns and the key files it names."""
    d = os.path.join(TMP, where)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "keys"))
    names = []
    with open(os.path.join(d, "tenants.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i, t in enumerate(fake.tenants):
            name = "cust%02d-prod" % (i + 1)
            shutil.copy(t.sm_key_path, os.path.join(d, "keys", name + "-sm.json"))
            row = {"name": name, "sm_key": "keys/%s-sm.json" % name, "scenario": "deployment"}
            w.writerow([row.get(c, "") for c in header])
            names.append(name)
    return d, names


def shell(cmd, cwd):
    env = dict(os.environ)
    env.pop("SSLKEYLOGFILE", None)
    env["PATH"] = os.path.dirname(os.path.abspath(CALMBIND)) + os.pathsep + env.get("PATH", "")
    env["CALMBIND_POLL_INTERVAL"] = "0.05"
    p = subprocess.run(["bash", "-e", "-c", cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


DOCS = ["README.md", "docs/commands.md"]
with FakeBTP(tenants=8, presets=["after-2023-10-16"]) as fake:
    header = csv_header("README.md")
    for doc in DOCS:
        blocks = yaml_blocks(doc)
        S.check("%s has a CI job that runs calmbind" % doc, blocks, "no ```yaml block with calmbind")
        for n, block in enumerate(blocks):
            lines, mx = run_lines(block), matrix(block)
            S.check("%s job %d: its steps have run: lines" % (doc, n + 1), lines, block)
            var, values = next(iter(mx.items())) if mx else ("", [""])
            written, names = [], []
            for value in values:
                # each matrix job gets its own fresh checkout
                job, names = checkout(fake, header, "%s-%d-%s" % (os.path.basename(doc), n + 1, value))
                for line in lines:
                    cmd = fill(line, var, value) if var else line
                    rc, out, err = shell(cmd, job)
                    S.eq("%s job %d, %s %s: `%s` exits 0" % (doc, n + 1, var, value, cmd), (rc, err[-400:]),
                         (0, err[-400:] if rc == 0 else ""))
                for p in artifact_paths(block):
                    p = fill(p, var, value) if var else p
                    S.check("%s job %d, %s %s: the artifact %s exists" % (doc, n + 1, var, value, p),
                            os.path.isfile(os.path.join(job, p)), os.listdir(job))
                out_dir = os.path.join(job, "out")
                if os.path.isdir(out_dir):
                    written += os.listdir(out_dir)
                    S.eq("%s job %d, %s %s: out/ made 0700" % (doc, n + 1, var, value),
                         stat.S_IMODE(os.stat(out_dir).st_mode), 0o700)
            S.eq("%s job %d: over the matrix, every tenant's key written once" % (doc, n + 1),
                 sorted(written), sorted(x + ".json" for x in names))

shutil.rmtree(TMP, ignore_errors=True)
S.done()
