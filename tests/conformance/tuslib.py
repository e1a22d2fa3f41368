"""Role: shared plumbing of the tus 1.0.0 conformance suite (stdlib only).

A raw-socket HTTP/1.1 client with exact control over what goes on the wire
(chunked bodies with trailers, bodies cut mid-stream, duplicate headers,
Expect: 100-continue) that sends a bearer token when given one, the Case
table type, check helpers that raise CheckFailed with the offending
exchange, small tus helpers (create, patch, head) shared by the case
modules, and mint() for HS256 JWTs.
"""

import base64
import copy
import hashlib
import hmac
import json
import random
import re
import socket
import threading
import time
import urllib.parse
import zlib
from dataclasses import dataclass, field
from typing import Callable

MUST, SHOULD, CONTRACT = "MUST", "SHOULD", "CONTRACT"
OFFSET_STREAM = "application/offset+octet-stream"
MIB = 1 << 20


@dataclass
class Case:
    """One row of the table: what is checked, where the spec says so, how."""
    id: str
    ext: str        # core, creation, ..., download, bad-input
    severity: str   # MUST / SHOULD (from the spec) or CONTRACT (partway's own promise)
    clause: str     # the requirement, quoted from the spec or the contract
    fn: Callable


def case(table, id, ext, severity, clause):
    """Decorator: appends the function to `table` as a Case row."""
    def add(fn):
        table.append(Case(id, ext, severity, clause, fn))
        return fn
    return add


class CheckFailed(Exception):
    def __init__(self, message, resp=None):
        super().__init__(message)
        self.resp = resp


class Skip(Exception):
    pass


@dataclass
class Response:
    status: int
    reason: str
    headers: list
    body: bytes
    request: str = ""
    interim: list = field(default_factory=list)  # 1xx status codes seen

    def h(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def describe(self):
        lines = [">>> " + line for line in self.request.splitlines()]
        lines.append(f"<<< HTTP {self.status} {self.reason}")
        lines += [f"<<< {k}: {v}" for k, v in self.headers]
        if self.body:
            lines.append("<<< " + preview(self.body))
        return "\n".join(lines)


def preview(data, limit=300):
    if sum(b < 9 or 13 < b < 32 or b > 126 for b in data[:64]) > 4:
        return f"<{len(data)} bytes of binary, starting {data[:16].hex()}>"
    text = data[:limit].decode("utf-8", "backslashreplace")
    return repr(text) + (f" ... ({len(data)} bytes)" if len(data) > limit else "")


def data(n, seed):
    return random.Random(seed).randbytes(n)


def b64(value):
    if isinstance(value, str):
        value = value.encode()
    return base64.b64encode(value).decode()


_CRC32C = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C.append(_c)


def crc32c(buf):
    c = 0xFFFFFFFF
    for b in buf:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def digest(algo, body):
    """base64 digest as Upload-Checksum carries it; None if we cannot compute it."""
    if algo == "crc32":
        raw = zlib.crc32(body).to_bytes(4, "big")
    elif algo == "crc32c":
        raw = crc32c(body).to_bytes(4, "big")
    elif algo in hashlib.algorithms_available:
        raw = hashlib.new(algo, body).digest()
    else:
        return None
    return base64.b64encode(raw).decode()


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def mint(secret, claims, header=None):
    """A JWT of `claims`, HS256-signed with `secret` (bytes); unsigned if `header` says another alg."""
    header = header or {"alg": "HS256", "typ": "JWT"}
    part = [b64url(json.dumps(x, separators=(",", ":")).encode()) for x in (header, claims)]
    signing_input = ".".join(part).encode()
    sig = hmac.new(secret, signing_input, hashlib.sha256).digest() if header.get("alg") == "HS256" else b""
    return signing_input.decode() + "." + b64url(sig)


def read_secret(path):
    """An HMAC secret file as the server reads it: trailing whitespace (the newline) is not part of it."""
    with open(path, "rb") as f:
        return f.read().rstrip(b" \t\n\r\x0c")


class Client:
    """One connection per request (Connection: close); every exchange logged.

    With a `token`, every request carries `Authorization: Bearer <token>` unless
    its headers name Authorization themselves (value None: send none at all).
    """

    def __init__(self, endpoint, timeout=30.0, token=None):
        u = urllib.parse.urlsplit(endpoint)
        self.endpoint = endpoint
        self.host, self.port = u.hostname, u.port or 80
        self.base = u.path if u.path.endswith("/") else u.path + "/"
        self.origin = f"{u.scheme}://{u.netloc}"
        self.timeout = timeout
        self.token = token
        self.log = []

    def as_token(self, token):
        """This client sending `token` instead (None: no Authorization); the log is shared."""
        other = copy.copy(self)
        other.token = token
        return other

    def path_of(self, url):
        """Path of a Location (absolute or relative), resolved against the endpoint."""
        return urllib.parse.urlsplit(urllib.parse.urljoin(self.endpoint, url)).path

    def _head_block(self, method, path, headers, tus, length, chunked):
        names = {k.lower() for k, _ in headers}
        out = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Connection: close"]
        if tus and "tus-resumable" not in names:
            out.append("Tus-Resumable: 1.0.0")
        if self.token and "authorization" not in names:
            out.append(f"Authorization: Bearer {self.token}")
        out += [f"{k}: {v}" for k, v in headers if v is not None]
        if chunked and "transfer-encoding" not in names:
            out.append("Transfer-Encoding: chunked")
        elif length is not None and "content-length" not in names:
            out.append(f"Content-Length: {length}")
        return "\r\n".join(out) + "\r\n\r\n"

    def request(self, method, path, headers=(), body=None, *, tus=True, chunks=None,
                trailers=(), cut=False, expect_continue=False):
        """Sends a request; returns the Response, or None when `cut` (no answer read).

        body: bytes sent as is (Content-Length = len(body) unless a header says otherwise).
        chunks: a list of bytes sent chunked, then `trailers` (list of (name, value)).
        cut: send what was given, then close the connection without finishing the body.
        """
        headers = list(headers)
        chunked = chunks is not None
        length = None if chunked or body is None else len(body)
        if method in ("POST", "PATCH", "PUT") and body is None and not chunked:
            length = 0
        head = self._head_block(method, path, headers, tus, length, chunked)
        if chunked:
            payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c)
            if not cut:
                payload += b"0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in trailers) + b"\r\n"
        else:
            payload = body or b""
        sent_desc = head + (preview(payload, 200) if payload else "")
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            sock.sendall(head.encode("latin-1"))
            reader = sock.makefile("rb")
            interim = []
            if expect_continue:
                sock.settimeout(5)
                first = _read_response(reader, method)
                sock.settimeout(self.timeout)
                if first.status != 100:
                    first.request = sent_desc
                    self.log.append(first)
                    return first
                interim.append(100)
            if cut:
                sock.sendall(payload)
                time.sleep(0.3)
                sock.shutdown(socket.SHUT_RDWR)
                self.log.append(Response(0, "(connection cut by client)", [], b"", sent_desc))
                return None
            sender = threading.Thread(target=_send_quietly, args=(sock, payload), daemon=True)
            sender.start()
            resp = _read_response(reader, method)
            while 100 <= resp.status < 200:
                interim.append(resp.status)
                resp = _read_response(reader, method)
            sender.join(5)
            resp.request, resp.interim = sent_desc, interim
            self.log.append(resp)
            return resp
        finally:
            sock.close()


def _send_quietly(sock, payload):
    try:
        sock.sendall(payload)
    except OSError:
        pass  # the server answered early and closed; the answer is what counts


def _read_response(reader, method):
    status_line = reader.readline()
    if not status_line:
        raise CheckFailed("connection closed without a response")
    parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    status, reason = int(parts[1]), parts[2] if len(parts) > 2 else ""
    headers = _read_fields(reader)
    resp = Response(status, reason, headers, b"")
    if method == "HEAD" or status in (204, 304) or status < 200:
        return resp
    te = (resp.h("transfer-encoding") or "").lower()
    if "chunked" in te:
        body = bytearray()
        while True:
            size = int(reader.readline().split(b";")[0].strip(), 16)
            if size == 0:
                _read_fields(reader)
                break
            body += reader.read(size)
            reader.readline()
        resp.body = bytes(body)
    elif resp.h("content-length") is not None:
        resp.body = reader.read(int(resp.h("content-length")))
    else:
        resp.body = reader.read()
    return resp


def _read_fields(reader):
    fields = []
    while True:
        line = reader.readline().decode("latin-1").rstrip("\r\n")
        if not line:
            return fields
        k, _, v = line.partition(":")
        fields.append((k.strip(), v.strip()))


# ---- checks ---------------------------------------------------------------

def check(cond, message, resp=None):
    if not cond:
        raise CheckFailed(message, resp)


def status(resp, *codes):
    check(resp is not None, "no response")
    check(resp.status in codes, f"expected status {'/'.join(map(str, codes))}, got {resp.status}", resp)
    return resp


def client_error(resp, *preferred):
    """Any 4xx (never 5xx); `preferred` narrows it when given."""
    check(resp is not None, "no response")
    if preferred:
        return status(resp, *preferred)
    check(400 <= resp.status < 500, f"expected a 4xx refusal, got {resp.status}", resp)
    return resp


def header(resp, name, expected=None):
    value = resp.h(name)
    check(value is not None, f"response lacks {name}", resp)
    if expected is not None:
        check(value == expected, f"{name} is {value!r}, expected {expected!r}", resp)
    return value


def no_header(resp, name):
    check(resp.h(name) is None, f"response must not carry {name} (has {resp.h(name)!r})", resp)


def int_header(resp, name, expected=None):
    value = header(resp, name)
    check(re.fullmatch(r"[0-9]+", value) is not None, f"{name} {value!r} is not a non-negative integer", resp)
    if expected is not None:
        check(int(value) == expected, f"{name} is {value}, expected {expected}", resp)
    return int(value)


# ---- tus helpers -------------------------------------------------------------

def create(t, length=None, *, defer=False, metadata=None, headers=(), body=None):
    """POST a new upload; returns (path, response). Asserts 201 + Location."""
    h = list(headers)
    if length is not None:
        h.append(("Upload-Length", str(length)))
    if defer:
        h.append(("Upload-Defer-Length", "1"))
    if metadata is not None:
        h.append(("Upload-Metadata", metadata))
    if body is not None:
        h.append(("Content-Type", OFFSET_STREAM))
    resp = status(t.c.request("POST", t.c.base, h, body), 201)
    return t.c.path_of(header(resp, "Location")), resp


def merge(defaults, extra):
    """`defaults` with same-named `extra` headers replacing them (value None drops one)."""
    names = {k.lower() for k, _ in extra}
    return [(k, v) for k, v in defaults if k.lower() not in names] + [(k, v) for k, v in extra if v is not None]


def patch(t, path, offset, body, headers=(), **kw):
    h = merge([("Content-Type", OFFSET_STREAM), ("Upload-Offset", str(offset))], list(headers))
    return t.c.request("PATCH", path, h, body, **kw)


def patch_ok(t, path, offset, body, headers=()):
    resp = status(patch(t, path, offset, body, headers), 204)
    int_header(resp, "Upload-Offset", offset + len(body))
    return resp


def head(t, path):
    return t.c.request("HEAD", path)


def state(t, path):
    """(offset, length or None, metadata or None) from a 200/204 HEAD."""
    resp = status(head(t, path), 200, 204)
    length = resp.h("Upload-Length")
    return int_header(resp, "Upload-Offset"), int(length) if length else None, resp.h("Upload-Metadata")


def expect_state(t, path, offset, length="?", why="the upload must be unchanged"):
    got = state(t, path)
    check(got[0] == offset, f"{why}: HEAD Upload-Offset is {got[0]}, expected {offset}", t.c.log[-1])
    if length != "?":
        check(got[1] == length, f"{why}: HEAD Upload-Length is {got[1]}, expected {length}", t.c.log[-1])
    return got


def upload(t, body, *, metadata=None, headers=()):
    """A finished upload of `body`; returns its path."""
    path, _ = create(t, len(body), metadata=metadata, headers=headers)
    if body:
        patch_ok(t, path, 0, body)
    return path


def unknown_path(t):
    return t.c.base + "0123456789abcdef0123456789abcdef"
