#!/usr/bin/env python3
"""tools/shape.py: the shape figures docs/development.md reports -- the largest Lua and
C files and the longest functions (tables counted too), so a change that grows one past the
house limits (about 400 lines a file, 60 a function) shows. `python3 tools/shape.py
[--top N]`; it reads scripts/ and src/ and prints a small table."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def files(top, ext):
    for d, _, names in os.walk(os.path.join(ROOT, top)):
        for n in names:
            if n.endswith(ext):
                yield os.path.join(d, n)


def lua_functions(path, lines):
    """(length, where) of each Lua function: from its `function` line to the `end` at the
    same indentation (the house style indents every block, so this is exact enough)."""
    out = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)(local\s+)?function\b|^(\s*)[\w.]+\s*=\s*function\b", line)
        if not m or line.rstrip().endswith(" end"):
            continue
        indent = len(line) - len(line.lstrip())
        for j in range(i + 1, len(lines)):
            l = lines[j]
            if l.strip() in ("end", "end,", "end)", "end }", "end },") and len(l) - len(l.lstrip()) == indent:
                out.append((j - i + 1, "%s:%d" % (os.path.relpath(path, ROOT), i + 1)))
                break
    return out


def c_functions(path, lines):
    """(length, where) of each C function: a definition line ending in `)` or `{` at
    column 0, to the `}` at column 0."""
    out = []
    start = None
    for i, line in enumerate(lines):
        if start is None and re.match(r"^[A-Za-z].*\)\s*(\{)?\s*$", line) and not line.startswith(("typedef", "struct", "static const", "#")):
            start = i
        elif start is not None and line.startswith("}"):
            out.append((i - start + 1, "%s:%d" % (os.path.relpath(path, ROOT), start + 1)))
            start = None
        elif start is not None and line.rstrip().endswith(";") and not line.startswith((" ", "\t")):
            start = None   # a prototype, not a definition
    return out


def main():
    top = int(sys.argv[sys.argv.index("--top") + 1]) if "--top" in sys.argv else 3
    for lang, top_dir, ext, fn in (("Lua", "scripts", ".lua", lua_functions), ("C", "src", ".c", c_functions)):
        sizes, funcs = [], []
        for p in files(top_dir, ext):
            with open(p, encoding="utf-8", errors="replace") as f:
                lines = f.read().split("\n")
            sizes.append((len(lines) - 1, os.path.relpath(p, ROOT)))
            funcs += fn(p, lines)
        sizes.sort(reverse=True)
        funcs.sort(reverse=True)
        print("%s: %d files; largest: %s" % (lang, len(sizes), ", ".join("%s (%d)" % (w, n) for n, w in sizes[:top])))
        print("%s: longest functions: %s" % (lang, ", ".join("%s (%d)" % (w, n) for n, w in funcs[:top])))


if __name__ == "__main__":
    main()
