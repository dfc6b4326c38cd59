"""fieldQuery / labelQuery grammar of the Service Manager (Peripli pkg/query/Query.g4).

criteria joined by ' and '; criterion = key SP op SP value; string values in single quotes with
'' for a literal quote; numbers, booleans, date-times unquoted; in/notin take '(' v, v ')'.
"""
import re

UNI_OPS = ("eq", "ne", "en", "gt", "ge", "lt", "le", "contains")
MULTI_OPS = ("in", "notin")
OPS = UNI_OPS + MULTI_OPS
KEY_RE = re.compile(r"[A-Za-z0-9_.\-/]+")
NUM_RE = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
DT_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


class QueryError(Exception):
    def __init__(self, col, msg):
        super().__init__(msg)
        self.col = col
        self.msg = msg


class _P:
    def __init__(self, s):
        self.s = s
        self.i = 0

    def eof(self):
        return self.i >= len(self.s)

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else ""

    def err(self, msg):
        raise QueryError(self.i, msg)

    def expect(self, text, what):
        if not self.s.startswith(text, self.i):
            got = self.s[self.i:self.i + 10] or "<EOF>"
            self.err("extraneous input %r expecting %s" % (got, what))
        self.i += len(text)

    def key(self):
        m = KEY_RE.match(self.s, self.i)
        if not m:
            self.err("mismatched input %r expecting key" % (self.s[self.i:self.i + 10] or "<EOF>"))
        self.i = m.end()
        return m.group(0)

    def op(self):
        m = re.compile(r"[A-Za-z]+").match(self.s, self.i)
        if not m or m.group(0) not in OPS:
            got = m.group(0) if m else (self.s[self.i:self.i + 10] or "<EOF>")
            self.err("unsupported operator %r" % got)
        self.i = m.end()
        return m.group(0)

    def value(self):
        if self.peek() == "'":
            self.i += 1
            out = []
            while True:
                if self.eof():
                    self.err("token recognition error: unterminated string")
                c = self.s[self.i]
                if c == "'":
                    if self.s.startswith("''", self.i):
                        out.append("'")
                        self.i += 2
                        continue
                    self.i += 1
                    return "".join(out)
                if c == "\n":
                    self.err("newline in string value")
                out.append(c)
                self.i += 1
        start = self.i
        while not self.eof() and self.s[self.i] not in " ,)":
            self.i += 1
        word = self.s[start:self.i]
        if word in ("true", "false"):
            return word == "true"
        if DT_RE.fullmatch(word):
            return word     # compared as text; same format sorts correctly
        if word and NUM_RE.fullmatch(word):
            return float(word) if any(c in word for c in ".eE") else int(word)
        self.i = start
        self.err("mismatched input %r expecting a quoted string, number, boolean or date-time"
                 % (word or "<EOF>"))


def parse(s):
    """List of (key, op, value) where value is a list for in/notin. Raises QueryError."""
    p = _P(s)
    if not s.strip():
        p.err("empty query")
    crits = []
    while True:
        k = p.key()
        p.expect(" ", "' '")
        op = p.op()
        p.expect(" ", "' '")
        if op in MULTI_OPS:
            p.expect("(", "'('")
            vals = [p.value()]
            while p.peek() == ",":
                p.i += 1
                if p.peek() == " ":
                    p.i += 1
                vals.append(p.value())
            p.expect(")", "')'")
            v = vals
        else:
            v = p.value()
        crits.append((k, op, v))
        if p.eof():
            return crits
        p.expect(" and ", "' and '")


def _get(item, key):
    cur = item
    for part in key.split("/"):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _cmp_eq(field, v):
    if isinstance(v, bool) or isinstance(field, bool):
        return field is v or (isinstance(field, bool) and str(field).lower() == str(v).lower())
    if isinstance(v, (int, float)) and isinstance(field, (int, float)):
        return field == v
    if field is None:
        return False
    return str(field) == str(v)


def _order(field, v):
    if isinstance(field, (int, float)) and isinstance(v, (int, float)):
        return (field > v) - (field < v)
    if field is None:
        return None
    a, b = str(field), str(v)
    return (a > b) - (a < b)


def match_field(item, crits):
    for k, op, v in crits:
        f = _get(item, k)
        if op == "eq":
            ok = _cmp_eq(f, v)
        elif op == "ne":
            ok = not _cmp_eq(f, v)
        elif op == "en":
            ok = f is None or _cmp_eq(f, v)
        elif op in ("gt", "ge", "lt", "le"):
            o = _order(f, v)
            ok = o is not None and {"gt": o > 0, "ge": o >= 0, "lt": o < 0, "le": o <= 0}[op]
        elif op == "contains":
            ok = f is not None and str(v) in str(f)
        elif op == "in":
            ok = any(_cmp_eq(f, x) for x in v)
        else:  # notin
            ok = not any(_cmp_eq(f, x) for x in v)
        if not ok:
            return False
    return True


def match_labels(labels, crits):
    labels = labels or {}
    for k, op, v in crits:
        vals = [str(x) for x in labels.get(k, [])]
        if op == "eq":
            ok = str(v) in vals
        elif op == "ne":
            ok = str(v) not in vals
        elif op == "in":
            ok = any(str(x) in vals for x in v)
        elif op == "notin":
            ok = not any(str(x) in vals for x in v)
        elif op == "contains":
            ok = any(str(v) in x for x in vals)
        else:
            o = [(_order(x, v)) for x in vals]
            ok = any(x is not None and {"gt": x > 0, "ge": x >= 0, "lt": x < 0, "le": x <= 0}[op]
                     for x in o)
        if not ok:
            return False
    return True
