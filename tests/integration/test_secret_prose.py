#!/usr/bin/env python3
"""Redaction goes by value and by the shapes of real secrets, not by the words
around a value: every message of calmbind's scripts that mentions a secret
(each string literal under scripts/ with "secret" in it, and the sentences
they are part of) reads as written after calm_redact, the filter every log
line, error and report passes through. The canary scans of test_secrets.py
check the other side: no secret gets out."""
import os
import re

from itest import ROOT, Suite, run

S = Suite("secret-prose")
SCRIPTS = os.path.join(ROOT, "scripts")
TMP = os.environ.get("TMPDIR", "/tmp")

# A Lua short string: "..." or '...' with backslash escapes, on one line.
LITERAL = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'')

# Sentences calmbind composes from such pieces (-v notes, plan --json's why):
# what the issue saw garbled, and their neighbours.
COMPOSED = [
    "the instance issues instance secrets: every binding of it shares one secret, so a "
    "new binding does not replace the old key's secret",
    "binding 'calm-api-key' (instance-secret: its token already carries both "
    "imp-cdm-feature-* scopes (checked before any change): no instance update, no new binding)",
    "credential type instance-secret: the secret is shared by all keys of the instance",
    "binding-secret: each binding has its own secret; deleting the binding revokes it",
    "client secret: read from the key file, never from argv",
    "password: from CF_PASSWORD or a file, never from the command line",
]


def literals():
    """[(file:line, Lua literal as written)] of every code string naming a secret."""
    out = []
    for top, _, files in os.walk(SCRIPTS):
        for name in sorted(files):
            if not name.endswith(".lua"):
                continue
            path = os.path.join(top, name)
            with open(path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if line.lstrip().startswith("--"):
                        continue
                    for lit in LITERAL.findall(line):
                        if "secret" in lit.lower():
                            out.append(("%s:%d" % (os.path.relpath(path, ROOT), n), lit))
    return out


found = literals()
S.check("the scripts have messages that mention secrets", len(found) >= 20, "%d found" % len(found))

lua = ["local log = require 'calm.log'", "local msgs = {"]
for where, lit in found:
    lua.append("  {%r, %s}," % (where, lit))
for text in COMPOSED:
    lua.append("  {'composed', %s}," % ('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'))
lua.append("}")
lua.append("""for _, m in ipairs(msgs) do
  local shown = log.redact(m[2])
  if shown == m[2] then print("same", m[1]) else print("changed", m[1], shown) end
end
-- the same filter still hides what is secret by value and by shape
log.secret("s3cr3t-canary-value")
print("canary", log.redact("instance secrets: s3cr3t-canary-value; client_secret=abc123; "
  .. "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"))""")
script = os.path.join(TMP, "calmbind-secret-prose-%d.lua" % os.getpid())
with open(script, "w", encoding="utf-8") as f:
    f.write("\n".join(lua) + "\n")
try:
    rc, out, err = run([script])
finally:
    os.unlink(script)
S.eq("the script ran", rc, 0)
rows = [l.split("\t") for l in out.splitlines()]
same = [r for r in rows if r[0] == "same"]
changed = [r for r in rows if r[0] == "changed"]
S.eq("every message was printed", len(same) + len(changed), len(found) + len(COMPOSED))
for r in changed:
    S.check("%s reads as written" % r[1], False, "printed as %r" % "\t".join(r[2:]))
S.check("%d messages that mention secrets read as written" % len(same), not changed and same,
        "%d changed" % len(changed))
canary = [r for r in rows if r[0] == "canary"]
S.eq("registered values and secret shapes are still hidden", canary[:1],
     [["canary", "instance secrets: ***; client_secret=***; Authorization: Bearer ***"]])
S.done()
