"""Role: bad-input conformance cases, as a data table.

Every row sends one malformed or hostile request and expects a 4xx refusal
(never a 5xx), then re-HEADs uploads that already hold data to show nothing
stored was harmed. Rows name their target with placeholders: {base} the
collection, {up} an upload of length 100 holding 10 bytes and metadata,
{deferred} a deferred-length upload holding 10 bytes, {done} a completed
5-byte upload, {id}/{ID} the id of {up} in lower/upper case.
"""

from tuslib import (CONTRACT, MUST, OFFSET_STREAM, SHOULD, b64, case, check, client_error, create,
                    digest, expect_state, head, header, patch_ok, state)

CASES = []
META = f"filename {b64('victim.bin')},k"
BIG = str(2 ** 64)          # one past u64::MAX
HUGE = "9" * 30


def _post(*headers):
    return dict(method="POST", path="{base}", headers=list(headers))


def _patch(path, offset, *headers, body=b"x", chunks=None):
    h = [("Content-Type", OFFSET_STREAM), ("Upload-Offset", offset), *headers]
    return dict(method="PATCH", path=path, headers=h, body=body, chunks=chunks)


ROWS = []


def row(id, clause, request, expect=(), severity=MUST, past_length=False, ext="bad-input"):
    ROWS.append(dict(id="bad-" + id, clause=clause, request=request, expect=expect,
                     severity=severity, past_length=past_length, ext=ext))


NUMERIC = [("negative", "-1"), ("non-numeric", "abc"), ("u64-overflow", BIG), ("huge", HUGE),
           ("inner-space", "1 0"), ("plus-sign", "+5"), ("hex", "0x10"), ("decimal", "1.5"), ("empty", "")]
for name, value in NUMERIC:
    row(f"upload-length-{name}", f"Upload-Length MUST be a non-negative integer: POST with {value!r} -> 4xx",
        _post(("Upload-Length", value)))
for name, value in NUMERIC + [("plus-current", "+10")]:
    row(f"upload-offset-{name}", f"Upload-Offset MUST be a non-negative integer: PATCH with {value!r} -> 4xx",
        _patch("{up}", value))
for name, value in NUMERIC[:6]:
    row(f"declared-length-{name}", f"Upload-Length on a deferred upload's PATCH: {value!r} -> 4xx",
        _patch("{deferred}", "10", ("Upload-Length", value), body=b""))
row("upload-offset-u64-max", "Upload-Offset 18446744073709551615 does not match -> 409",
    _patch("{up}", str(2 ** 64 - 1)), expect=(409,))
for value in ["2", "0", "true"]:
    row(f"defer-length-{value}", f"Upload-Defer-Length: its value MUST be 1; {value!r} -> 400",
        _post(("Upload-Defer-Length", value)), expect=(400,))

for name, value in [("invalid-base64", "name !!!notbase64"), ("duplicate-keys", "a YQ==,a Yg=="),
                    ("key-with-spaces", "my key dmFs"), ("empty-key", "a YQ==,,b Yg=="),
                    ("oversized-64k", "big " + "A" * 65536), ("non-utf8", "n\xff YQ==")]:
    row(f"metadata-{name}", "Upload-Metadata: keys MUST be unique and non-empty without spaces, "
        f"values base64, size limited: {name} -> 4xx",
        _post(("Upload-Length", "5"), ("Upload-Metadata", value)), severity=CONTRACT)

ID_PATHS = [("dotdot", "{base}../{id}"), ("encoded-dotdot", "{base}%2e%2e/{id}"),
            ("encoded-slash", "{base}..%2f{id}"), ("trailing-dotdot", "{base}{id}/.."),
            ("uppercase-hex", "{base}{ID}"), ("hex-31", "{base}{id31}"), ("hex-33", "{base}{id}0"),
            ("nul", "{base}{id}%00"), ("double-slash", "{base}/{id}"), ("non-hex", "{base}{nonhex}")]
for name, path in ID_PATHS:
    for method in ("HEAD", "PATCH", "DELETE"):
        req = _patch(path, "10") if method == "PATCH" else dict(method=method, path=path, headers=[])
        row(f"id-{name}-{method.lower()}", f"Bad ids (path traversal, not 32 lowercase hex) -> 404 "
            f"and no other upload touched ({method} {path})", req, expect=(404,), severity=CONTRACT)

row("patch-content-length-past-length", "A PATCH whose Content-Length runs past Upload-Length -> 413",
    _patch("{up}", "10", body=b"y" * 91), expect=(413,), severity=CONTRACT)
row("patch-chunked-past-length", "A chunked PATCH body running past Upload-Length -> 4xx, and the offset "
    "never passes the length", _patch("{up}", "10", body=None, chunks=[b"y" * 50, b"z" * 50, b"w" * 50]),
    past_length=True, severity=CONTRACT)
row("patch-completed-upload", "A PATCH to a completed upload -> 4xx, nothing changes",
    _patch("{done}", "5"))
row("post-body-past-length", "creation-with-upload body longer than Upload-Length -> 413",
    dict(method="POST", path="{base}", headers=[("Upload-Length", "3"), ("Content-Type", OFFSET_STREAM)],
         body=b"abcdef"), expect=(413,), severity=CONTRACT)
for value in ["FOO", "PUT", "PATCH DELETE"]:
    row(f"method-override-{value.split()[0].lower()}{'-list' if ' ' in value else ''}",
        f"X-HTTP-Method-Override {value!r} names no tus method -> 4xx",
        dict(method="POST", path="{up}", headers=[("X-HTTP-Method-Override", value)]), severity=CONTRACT)
for name, value in [("no-space", "sha1"), ("bad-base64", "sha1 !!!notbase64"), ("empty", ""),
                    ("extra-field", f"sha1 {digest('sha1', b'x')} more")]:
    row(f"checksum-malformed-{name}", f"Upload-Checksum malformed ({value!r}) -> 400, nothing stored",
        _patch("{up}", "10", ("Upload-Checksum", value)), expect=(400,), severity=CONTRACT, ext="checksum")
# RFC 9110 5.3: a singleton field must not be sent twice; a recipient may reject it, and
# should not silently pick one of two conflicting values.
row("duplicate-upload-offset", "Two Upload-Offset header lines (10 and 0): ambiguous, refused (4xx)",
    _patch("{up}", "10", ("Upload-Offset", "0")), severity=SHOULD)
row("duplicate-upload-length", "Two Upload-Length header lines (5 and 10) on POST: refused (4xx)",
    _post(("Upload-Length", "5"), ("Upload-Length", "10")), severity=SHOULD)
row("duplicate-upload-checksum", "Two Upload-Checksum lines (right, then wrong): ambiguous, refused (4xx)",
    _patch("{up}", "10", ("Upload-Checksum", f"sha1 {digest('sha1', b'x')}"),
           ("Upload-Checksum", f"sha1 {digest('sha1', b'y')}")), severity=SHOULD, ext="checksum")
row("duplicate-content-length", "Two differing Content-Length lines: refused (RFC 9112 6.3)",
    _patch("{up}", "10", ("Content-Length", "1"), ("Content-Length", "2")))


def _victims(t):
    up, _ = create(t, 100, metadata=META)
    patch_ok(t, up, 0, b"0123456789")
    deferred, _ = create(t, defer=True, body=b"0123456789")
    done, _ = create(t, 5, body=b"done!")
    return dict(up=up, deferred=deferred, done=done)


def _run(r):
    def run(t):
        v = _victims(t)
        uid = v["up"].rsplit("/", 1)[1]
        fields = dict(v, base=t.c.base, id=uid, ID=uid.upper(), id31=uid[:31], nonhex="g" * 32)
        req = r["request"]
        path = req["path"].format(**fields)
        resp = t.c.request(req["method"], path, req["headers"], req.get("body"), chunks=req.get("chunks"))
        client_error(resp, *r["expect"])
        if r["past_length"]:
            offset, length, _ = state(t, v["up"])
            check(10 <= offset <= 100 and length == 100,
                  f"after a body running past the length: offset {offset}, length {length}", t.c.log[-1])
        else:
            expect_state(t, v["up"], 10, 100, "a refused request must not harm stored uploads")
            check(t.c.log[-1].h("Upload-Metadata") == META, "metadata of a stored upload changed", t.c.log[-1])
        expect_state(t, v["done"], 5, 5, "a refused request must not harm stored uploads")
        resp = head(t, v["deferred"])
        header(resp, "Upload-Defer-Length", "1")
        expect_state(t, v["deferred"], 10, None, "a refused request must not harm stored uploads")
    return run


for r in ROWS:
    case(CASES, r["id"], r["ext"], r["severity"], r["clause"])(_run(r))
