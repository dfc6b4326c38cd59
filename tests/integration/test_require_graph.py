#!/usr/bin/env python3
"""The Lua tree's layers hold: every module under scripts/ sits in a layer
folder, requires only modules of its own layer or lower ones, and the
require graph has no cycle. docs/development.md draws the same table.

A require is any require "x" / require("x") / pcall(require, "x") in code
(comments and strings other than the module name are ignored), at top level
or inside a function: a lazy require that dodges a cycle is still an edge.
A require inside a function is refused unless a comment on its line or the
line above says why (the one accepted reason: "lazy: start-up time ...")."""
import os
import re
import sys

from itest import ROOT, Suite

S = Suite("require-graph")
SCRIPTS = os.path.join(ROOT, "scripts")

# Lowest first. "core" is what the C host preloads (calm.http, calm.task,
# calm.codec, calm.fs, calm.log, calm.cmdline, calm.x509 ...) and lua-cjson.
LAYERS = ["core", "lib", "net", "btp", "key", "policy", "model", "ops", "commands"]
RANK = {name: i for i, name in enumerate(LAYERS)}
CORE = re.compile(r"^(cjson(\.safe)?|calm\.[a-z_0-9]+)$")


def strip_comments(src):
    """Lua source with comments blanked (long strings and comments included),
    keeping short strings, so that only code's require calls are seen."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("--", i):
            m = re.match(r"--\[(=*)\[", src[i:])
            if m:
                end = src.find("]" + m.group(1) + "]", i)
                i = n if end < 0 else end + len(m.group(1)) + 2
            else:
                end = src.find("\n", i)
                i = n if end < 0 else end
            continue
        m = re.match(r"\[(=*)\[", src[i:])
        if m:
            end = src.find("]" + m.group(1) + "]", i)
            i = n if end < 0 else end + len(m.group(1)) + 2
            out.append('""')
            continue
        if c in "\"'":
            j = i + 1
            while j < n and src[j] != c and src[j] != "\n":
                j += 2 if src[j] == "\\" else 1
            out.append(src[i:j + 1])
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


REQUIRE = re.compile(r"""\brequire\s*(?:\(\s*)?["']([\w.]+)["']|pcall\(\s*require\s*,\s*["']([\w.]+)["']""")


def module_of(rel):
    """scripts/calm/net/rest.lua -> calm.net.rest"""
    return rel[:-4].replace(os.sep, ".")


def layer_of_module(mod):
    parts = mod.split(".")
    if parts[0] == "commands":
        return "commands"
    if parts[0] == "calm" and len(parts) >= 3 and parts[1] in RANK:
        return parts[1]
    if CORE.match(mod):
        return "core"
    return None


modules, edges = {}, {}
for base, _, files in os.walk(SCRIPTS):
    for f in files:
        if f.endswith(".lua"):
            rel = os.path.relpath(os.path.join(base, f), SCRIPTS)
            modules[module_of(rel)] = rel

misplaced = sorted(rel for mod, rel in modules.items() if layer_of_module(mod) in (None, "core"))
S.check("every Lua module sits in a layer folder (" + ", ".join(LAYERS[1:]) + ")", not misplaced,
        "outside the layers: " + ", ".join(misplaced))

for mod, rel in sorted(modules.items()):
    with open(os.path.join(SCRIPTS, rel), encoding="utf-8") as fh:
        code = strip_comments(fh.read())
    edges[mod] = sorted({a or b for a, b in REQUIRE.findall(code)})

def lazy_requires(src):
    """(line, module) of each require inside a function body. The code is
    blanked of comments and string contents first (newlines kept), then its
    blocks are followed: function/if/do/repeat open one, end/until close it."""
    keep = strip_comments_keep_lines(src)
    tok = re.compile(r"""\brequire\s*(?:\(\s*["']([\w.]+)["']\s*\)|["']([\w.]+)["'])|pcall\(\s*require\s*,\s*["']([\w.]+)["']"""
                     r"""|"[^"\n]*"|'[^'\n]*'|[A-Za-z_][A-Za-z0-9_]*""")
    stack, found = [], []
    for m in tok.finditer(keep):
        t = m.group(0)
        mod = m.group(1) or m.group(2) or m.group(3)
        if mod:
            if "function" in stack:
                found.append((keep.count("\n", 0, m.start()) + 1, mod))
        elif t in ("function", "if", "do", "repeat"):
            stack.append(t)
        elif t in ("end", "until") and stack:
            stack.pop()
    return found


def strip_comments_keep_lines(src):
    """Comments and long strings blanked to spaces, newlines kept, so that
    line numbers stay those of the file."""
    out, i, n = [], 0, len(src)
    while i < n:
        if src.startswith("--", i):
            m = re.match(r"--\[(=*)\[", src[i:])
            if m:
                end = src.find("]" + m.group(1) + "]", i)
                end = n if end < 0 else end + len(m.group(1)) + 2
            else:
                end = src.find("\n", i)
                end = n if end < 0 else end
            out.append(re.sub(r"[^\n]", " ", src[i:end]))
            i = end
            continue
        m = re.match(r"\[(=*)\[", src[i:])
        if m:
            end = src.find("]" + m.group(1) + "]", i)
            end = n if end < 0 else end + len(m.group(1)) + 2
            out.append('"' + re.sub(r"[^\n]", " ", src[i + 1:end - 1]) + '"')
            i = end
            continue
        if src[i] in "\"'":
            q, j = src[i], i + 1
            while j < n and src[j] != q and src[j] != "\n":
                j += 2 if src[j] == "\\" else 1
            body = src[i + 1:j]
            # a module name stays readable; other strings cannot open a block
            out.append(q + (body if re.fullmatch(r"[\w.]*", body) else re.sub(r"[^\n]", "_", body)) + q)
            i = j + 1
            continue
        out.append(src[i])
        i += 1
    return "".join(out)


def says_why(lines, line):
    near = " ".join(lines[max(0, line - 2):line])
    return re.search(r"--.*\blazy\b.*start-up", near) is not None


lazy = []
for mod, rel in sorted(modules.items()):
    with open(os.path.join(SCRIPTS, rel), encoding="utf-8") as fh:
        src = fh.read()
    lines = src.split("\n")
    lazy += [f"scripts/{rel}:{ln}: {req}" for ln, req in lazy_requires(src) if not says_why(lines, ln)]
S.check("no require inside a function (hoist it; a lazy one for start-up time says so: -- lazy: start-up ...)",
        not lazy, "; ".join(lazy[:20]) + (" ..." if len(lazy) > 20 else ""))


upward, unknown = [], []
for mod, deps in sorted(edges.items()):
    me = layer_of_module(mod)
    for d in deps:
        if d == mod:
            continue
        them = layer_of_module(d) if (d in modules or CORE.match(d)) else None
        if them is None:
            unknown.append(f"{mod} -> {d}")
        elif me in RANK and RANK[them] > RANK[me]:
            upward.append(f"{mod} ({me}) -> {d} ({them})")
S.check("no module requires one of a higher layer", not upward, "; ".join(upward))
S.check("every required module exists", not unknown, "; ".join(unknown))
S.check("no module requires itself", not [m for m, d in edges.items() if m in d],
        ", ".join(m for m, d in edges.items() if m in d))


def find_cycle():
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in edges.get(m, []):
            if d == m or d not in edges:
                continue
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                c = visit(d)
                if c:
                    return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state:
            c = visit(m)
            if c:
                return c
    return None


cycle = find_cycle()
S.check("the require graph has no cycle", cycle is None, " -> ".join(cycle or []))

# The picture in docs/development.md names every folder with the folders it may require.
with open(os.path.join(ROOT, "docs", "development.md"), encoding="utf-8") as fh:
    dev = fh.read()
missing = [name for name in LAYERS[1:] if not re.search(r"`(scripts/)?(calm/)?%s/`" % name, dev)]
S.check("docs/development.md describes every layer folder", not missing, "missing: " + ", ".join(missing))

# The checker itself: an upward edge and a cycle are found.
S.check("the check sees an upward edge", layer_of_module("calm.lib.json") == "lib"
        and RANK[layer_of_module("calm.ops.runner")] > RANK["lib"])
saved = dict(edges)
edges.clear()
edges.update({"calm.lib.a": ["calm.lib.b"], "calm.lib.b": ["calm.lib.a"]})
S.check("the check sees a cycle", find_cycle() == ["calm.lib.a", "calm.lib.b", "calm.lib.a"], str(find_cycle()))
edges.clear()
edges.update(saved)
S.check("the check sees a require inside a function, and its reason",
        lazy_requires('local a = require "calm.lib.json"\nlocal function f()\n  if x then return require("calm.log") end\nend\n')
        == [(3, "calm.log")] and lazy_requires('local s = "function"\nlocal b = require "calm.log"\n') == []
        and says_why(["-- lazy: start-up time: only --help needs it", 'local c = require "calm.lib.cli"'], 2))
S.check("comments do not count as requires",
        REQUIRE.findall(strip_comments('-- require "calm.ops.x"\nlocal y = 1 --[[ require("calm.ops.z") ]]')) == [])
S.done()
