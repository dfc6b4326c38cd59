"""The request head for the fake's handler, without the email package.

http.server parses request headers with email.parser (through http.client.parse_headers):
in a profile of 500 tenants at once that was a fifth of the fake's CPU. `parse_request`
below is BaseHTTPRequestHandler.parse_request (Python 3.11) with the header block read by
http.client's own line reader (same limits: 64 KiB a line, 100 lines) and kept in a small
case-insensitive `Headers`: `get` gives the first value of a name as email.message.Message
does (leading blanks dropped, folded lines kept, the line end stripped), `items` all
(name, value) pairs in order.
"""
import http
import http.client


class Headers:
    __slots__ = ("_items", "_first")

    def __init__(self, items):
        self._items = items
        self._first = {}
        for k, v in items:
            self._first.setdefault(k.lower(), v)

    def get(self, name, default=None):
        return self._first.get(name.lower(), default)

    def __getitem__(self, name):
        return self._first.get(name.lower())

    def __contains__(self, name):
        return name.lower() in self._first

    def get_all(self, name, default=None):
        name = name.lower()
        got = [v for k, v in self._items if k.lower() == name]
        return got or default

    def items(self):
        return list(self._items)

    def keys(self):
        return [k for k, _ in self._items]

    def values(self):
        return [v for _, v in self._items]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self._items)

    def __str__(self):
        return "".join("%s: %s\n" % kv for kv in self._items) + "\n"


def parse_headers(lines):
    """Headers of raw header lines (bytes with their line ends, as http.client reads them).
    A line that starts with a blank continues the previous one; a line without ':' is
    ignored."""
    items = []
    for raw in lines:
        line = raw.decode("iso-8859-1")
        if line[:1] in (" ", "\t"):
            if items:
                items[-1][1].append(line)
            continue
        name, sep, value = line.partition(":")
        if sep:
            items.append((name, [value.lstrip(" \t")]))
    return Headers([(k, "".join(v).rstrip("\r\n")) for k, v in items])


def parse_request(h):
    """BaseHTTPRequestHandler.parse_request for handler h, with parse_headers above."""
    h.command = None
    h.request_version = version = h.default_request_version
    h.close_connection = True
    requestline = str(h.raw_requestline, "iso-8859-1").rstrip("\r\n")
    h.requestline = requestline
    words = requestline.split()
    if len(words) == 0:
        return False
    if len(words) >= 3:
        version = words[-1]
        try:
            if not version.startswith("HTTP/"):
                raise ValueError
            number = version.split("/", 1)[1].split(".")
            if len(number) != 2:
                raise ValueError
            number = int(number[0]), int(number[1])
        except (ValueError, IndexError):
            h.send_error(http.HTTPStatus.BAD_REQUEST, "Bad request version (%r)" % version)
            return False
        if number >= (1, 1) and h.protocol_version >= "HTTP/1.1":
            h.close_connection = False
        if number >= (2, 0):
            h.send_error(http.HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
                         "Invalid HTTP version (%s)" % version)
            return False
        h.request_version = version
    if not 2 <= len(words) <= 3:
        h.send_error(http.HTTPStatus.BAD_REQUEST, "Bad request syntax (%r)" % requestline)
        return False
    command, path = words[:2]
    if len(words) == 2:
        h.close_connection = True
        if command != "GET":
            h.send_error(http.HTTPStatus.BAD_REQUEST, "Bad HTTP/0.9 request type (%r)" % command)
            return False
    h.command, h.path = command, path
    if h.path.startswith("//"):
        h.path = "/" + h.path.lstrip("/")
    try:
        h.headers = parse_headers(http.client._read_headers(h.rfile))
    except http.client.LineTooLong as err:
        h.send_error(http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", str(err))
        return False
    except http.client.HTTPException as err:
        h.send_error(http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", str(err))
        return False
    conntype = h.headers.get("Connection", "").lower()
    if conntype == "close":
        h.close_connection = True
    elif conntype == "keep-alive" and h.protocol_version >= "HTTP/1.1":
        h.close_connection = False
    expect = h.headers.get("Expect", "")
    if (expect.lower() == "100-continue" and h.protocol_version >= "HTTP/1.1" and
            h.request_version >= "HTTP/1.1"):
        if not h.handle_expect_100():
            return False
    return True
