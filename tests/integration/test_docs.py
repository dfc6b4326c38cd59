#!/usr/bin/env python3
"""The README stays short and for users, and every page it links to exists:
docs/ holds the detail, kept true by the suites that check it (the fault
matrix in docs/reliability.md, the example command in docs/lua-api.md)."""
import os
import re

from itest import ROOT, Suite

S = Suite("docs")
README = os.path.join(ROOT, "README.md")
DOCS = os.path.join(ROOT, "docs")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def anchors(text):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to '-'."""
    out = set()
    for line in text.splitlines():
        m = re.match(r"#+ (.*)", line)
        if m:
            h = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            out.add(h.replace(" ", "-"))
    return out


readme = read(README)
lines = readme.splitlines()
S.check("README.md is at most 250 lines", len(lines) <= 250, "%d lines" % len(lines))
first = [l for l in lines[:20] if l.startswith("apt-get") or l.strip() == "make test"]
S.check("README's first commands: install + make demo, then make test",
        len(first) == 2 and first[0].rstrip().endswith("&& make demo") and first[1] == "make test",
        repr(first))
for word in ("btp create services/instance", "subaccount-admin", "btp create services/binding",
             "| exit |", "## Errors and what to do", "libcurl4 liblua5.4-0 lua-cjson"):
    S.check("README has %r" % word, word in readme, "missing")

pages = {"README.md": readme}
for name in sorted(os.listdir(DOCS)):
    if name.endswith(".md"):
        pages["docs/" + name] = read(os.path.join(DOCS, name))
for want in ("lua-api.md", "design.md", "reliability.md", "development.md", "commands.md"):
    S.check("README links docs/%s" % want, "](docs/%s)" % want in readme, "no link")

for page, text in pages.items():
    base = os.path.dirname(os.path.join(ROOT, page))
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, frag = target.partition("#")
        full = os.path.normpath(os.path.join(base, path)) if path else os.path.join(ROOT, page)
        if not os.path.exists(full):
            bad.append(target)
        elif frag and full.endswith(".md") and frag not in anchors(read(full)):
            bad.append(target)
    S.check("%s: every relative link resolves" % page, not bad, ", ".join(bad))

example = read(os.path.join(ROOT, "examples", "commands", "instances.lua")).strip()
S.check("docs/lua-api.md shows examples/commands/instances.lua as it is",
        example in pages["docs/lua-api.md"], "copy the file into the page again")
S.done()
