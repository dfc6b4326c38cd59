#!/usr/bin/env python3
"""Layers. C: the calls between src/*.c, read from the object files (the global
symbols each build/obj/*.o defines and the ones it leaves undefined), checked
against the table under "### C layers" in docs/development.md: no file calls a
file of a row above its own, no two files call each other round a circle, and
a file that opens a Lua module exports nothing but its luaopen_calm_*.
The Lua require graph of scripts/ belongs next to it, as its own section."""
import os
import re
import subprocess

from itest import CALMBIND, ROOT, Suite

S = Suite("layers")
DEVDOC = os.path.join(ROOT, "docs", "development.md")


# ---------------------------------------------------------------- graphs --

def circles(edges):
    """The strongly connected components of {node: set(node)} with more than
    one node (each a circle of calls), as sorted lists, sorted."""
    index, low, on, stack, out = {}, {}, set(), [], []

    def visit(n):
        index[n] = low[n] = len(index)
        stack.append(n)
        on.add(n)
        for m in edges.get(n, ()):
            if m not in index:
                visit(m)
                low[n] = min(low[n], low[m])
            elif m in on:
                low[n] = min(low[n], index[m])
        if low[n] == index[n]:
            comp = []
            while True:
                m = stack.pop()
                on.discard(m)
                comp.append(m)
                if m == n:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for n in sorted(edges):
        if n not in index:
            visit(n)
    return sorted(out)


def upward(edges, rank):
    """Edges a -> b where b's layer is above a's (rank: 0 = top row)."""
    return sorted((a, b) for a in edges for b in edges[a] if rank[b] < rank[a])


def layer_table(path, heading):
    """[(layer, [file stems])] top to bottom: the first table after `heading`."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    at = text.find("\n" + heading + "\n")
    if at < 0:
        return None
    rows = []
    for line in text[at + len(heading) + 2:].splitlines():
        if rows and not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2 or set(cells[0]) <= set("-") or cells[0] == "layer":
            continue
        rows.append((cells[0], re.findall(r"`([\w.]+)\.c`", cells[1])))
    return rows


# Before trusting them on the tree: the checks find what they are for.
S.eq("the circle finder finds planted circles",
     circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}}), [["a", "b", "c"], ["d", "e"]])
S.eq("the circle finder passes a layered graph", circles({"a": {"b", "c"}, "b": {"c"}, "c": set()}), [])
S.check("an edge up the table is found",
        upward({"low": {"high"}, "high": {"low"}}, {"high": 0, "low": 1}) == [("low", "high")])


# --------------------------------------------------------------------- C --

def nm(obj, *flags):
    out = subprocess.run(["nm", "-P", *flags, obj], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def c_graph(objdir):
    """({file: set(files it calls)}, {file: set(symbols it defines)})."""
    defines, uses = {}, {}
    for name in sorted(os.listdir(objdir)):
        if name.endswith(".o"):
            stem = name[:-2]
            obj = os.path.join(objdir, name)
            defines[stem] = nm(obj, "-g", "--defined-only")
            uses[stem] = nm(obj, "-u")
    owner = {sym: stem for stem, syms in defines.items() for sym in syms}
    edges = {stem: {owner[s] for s in uses[stem] if s in owner and owner[s] != stem} for stem in defines}
    return edges, defines


def c_section():
    objdir = os.path.join(os.path.dirname(os.path.abspath(CALMBIND)), "obj")
    if not S.check("object files to read", os.path.isdir(objdir), "no " + objdir + " (run make)"):
        return
    edges, defines = c_graph(objdir)
    table = layer_table(DEVDOC, "### C layers")
    if not S.check("docs/development.md has the C layer table", table, "no '### C layers' table"):
        return
    rank, twice = {}, []
    for i, (layer, files) in enumerate(table):
        for f in files:
            if f in rank:
                twice.append(f + ".c")
            rank[f] = i
    S.check("each C file is in one layer", not twice, "listed twice: " + ", ".join(twice))
    sources = {n[:-2] for n in os.listdir(os.path.join(ROOT, "src")) if n.endswith(".c")} | {"embedded"}
    S.check("the table lists every C file, and no other", set(rank) == sources,
            "not in the table: %s; not in src/: %s" % (sorted(sources - set(rank)), sorted(set(rank) - sources)))
    S.check("every C file has an object to read", set(defines) >= sources,
            "no object for %s (run make)" % sorted(sources - set(defines)))
    S.check("the call graph is not empty", sum(len(v) for v in edges.values()) >= 40,
            "%d calls between files" % sum(len(v) for v in edges.values()))
    unplaced = sorted(set(edges) - set(rank))
    if unplaced:
        return
    found = circles(edges)
    S.check("no C files call each other round a circle", not found,
            "; ".join(" <-> ".join(c + ".c" for c in comp) for comp in found))
    ups = upward(edges, rank)
    S.check("no C file calls a layer above its own", not ups,
            "; ".join("%s.c (%s) calls %s.c (%s)" % (a, table[rank[a]][0], b, table[rank[b]][0])
                      for a, b in ups))
    for stem in sorted(defines):
        opens = sorted(s for s in defines[stem] if s.startswith("luaopen_"))
        if opens:
            S.check("%s.c opens one module, in the bindings layer" % stem,
                    len(opens) == 1 and table[rank[stem]][0] == "bindings", ", ".join(opens))
            others = sorted(defines[stem] - set(opens))
            S.check("%s.c exports only %s" % (stem, opens[0]), not others, ", ".join(others))


c_section()
S.done()
