"""Role: conformance cases for the tus 1.0.0 core protocol (tus 1.0.0, tus.io/protocols/resumable-upload).

Each row quotes the requirement it checks. Severity MUST/SHOULD comes from the
spec's own keyword; CONTRACT marks partway's promise (as the README documents it).
"""

import time

from tuslib import (CONTRACT, MUST, SHOULD, OFFSET_STREAM, case, check, create,
                    data, expect_state, head, header, int_header, no_header, patch, patch_ok,
                    status, unknown_path)

CASES = []
EXT = "core"


@case(CASES, "core-options", EXT, MUST,
      "OPTIONS: 204 or 200; Tus-Version MUST be in the OPTIONS response, listing 1.0.0")
def options(t):
    resp = status(t.c.request("OPTIONS", t.c.base, tus=False), 200, 204)
    versions = [v.strip() for v in header(resp, "Tus-Version").split(",")]
    check("1.0.0" in versions, f"Tus-Version {versions} lacks 1.0.0", resp)


@case(CASES, "core-options-ignores-tus-resumable", EXT, MUST,
      "OPTIONS: the Server MUST ignore a Tus-Resumable request header (OPTIONS with "
      "Tus-Resumable: 0.0.1 still succeeds, on the collection and on an upload)")
def options_ignores_version(t):
    status(t.c.request("OPTIONS", t.c.base, [("Tus-Resumable", "0.0.1")]), 200, 204)
    path, _ = create(t, 10)
    status(t.c.request("OPTIONS", path, [("Tus-Resumable", "0.0.1")]), 200, 204)


@case(CASES, "core-options-extension-list", EXT, MUST,
      "Tus-Extension: comma-separated list of the extensions supported; Tus-Max-Size a "
      "non-negative integer")
def options_lists(t):
    resp = t.options
    ext = resp.h("Tus-Extension")
    if ext is not None:
        for e in ext.split(","):
            check(e.strip() and " " not in e.strip(), f"malformed Tus-Extension {ext!r}", resp)
    if resp.h("Tus-Max-Size") is not None:
        int_header(resp, "Tus-Max-Size")


def _refused_412(t, resp):
    status(resp, 412)
    versions = header(resp, "Tus-Version")
    check("1.0.0" in versions, f"Tus-Version {versions!r} lacks 1.0.0", resp)


def _version_cases(bad_headers, label):
    def run(t):
        resp = t.c.request("POST", t.c.base, [*bad_headers, ("Upload-Length", "5")], tus=False)
        _refused_412(t, resp)
        no_header(resp, "Location")
        path, _ = create(t, 10)
        patch_ok(t, path, 0, b"abc")
        _refused_412(t, t.c.request("PATCH", path, [*bad_headers, ("Content-Type", OFFSET_STREAM),
                                                     ("Upload-Offset", "3")], b"defg", tus=False))
        _refused_412(t, t.c.request("HEAD", path, bad_headers, tus=False))
        _refused_412(t, t.c.request("DELETE", path, bad_headers, tus=False))
        expect_state(t, path, 3, 10, "a request refused with 412 must not be processed")
    return run


for _id, _hdrs, _what in [("core-412-missing-tus-resumable", [], "missing"),
                          ("core-412-unsupported-tus-resumable", [("Tus-Resumable", "0.2.2")], "unsupported")]:
    case(CASES, _id, EXT, MUST,
         f"Tus-Resumable {_what}: the Server MUST respond 412 Precondition Failed, MUST include "
         "Tus-Version, and MUST NOT process the request (POST/PATCH/HEAD/DELETE)")(_version_cases(_hdrs, _what))


@case(CASES, "core-tus-resumable-on-every-response", EXT, MUST,
      "Tus-Resumable MUST be included in every request and response except for OPTIONS requests")
def tus_resumable_everywhere(t):
    t.c.log.clear()
    path, _ = create(t, 10)
    patch(t, path, 0, b"12345")
    patch(t, path, 0, b"12345")                                   # 409
    patch(t, path, 5, b"x", [("Content-Type", "text/plain")])     # 415
    head(t, path)
    head(t, unknown_path(t))                                       # 404
    t.c.request("POST", t.c.base, [("Upload-Length", "1")], tus=False)  # 412
    t.c.request("DELETE", path)
    t.c.request("OPTIONS", t.c.base, tus=False)
    for resp in t.c.log:
        check(resp.h("Tus-Resumable") == "1.0.0",
              f"a {resp.status} response lacks Tus-Resumable: 1.0.0", resp)


@case(CASES, "core-head-offset-length", EXT, MUST,
      "HEAD: the Server MUST always include Upload-Offset (also 0 and when complete), and "
      "MUST include Upload-Length if the length is known")
def head_fields(t):
    path, _ = create(t, 12)
    resp = head(t, path)
    int_header(resp, "Upload-Offset", 0)
    int_header(resp, "Upload-Length", 12)
    patch_ok(t, path, 0, b"hello ")
    int_header(head(t, path), "Upload-Offset", 6)
    patch_ok(t, path, 6, b"world!")
    resp = head(t, path)
    int_header(resp, "Upload-Offset", 12)
    int_header(resp, "Upload-Length", 12)


@case(CASES, "core-head-status", EXT, SHOULD, "HEAD: the Server SHOULD respond 200 OK or 204 No Content")
def head_status(t):
    path, _ = create(t, 3)
    status(head(t, path), 200, 204)


@case(CASES, "core-head-no-store", EXT, MUST,
      "HEAD: the Server MUST prevent caching by adding Cache-Control: no-store")
def head_no_store(t):
    path, _ = create(t, 3)
    value = header(head(t, path), "Cache-Control")
    check("no-store" in [v.strip().lower() for v in value.split(",")],
          f"Cache-Control {value!r} lacks no-store", t.c.log[-1])


@case(CASES, "core-head-unknown", EXT, SHOULD,
      "HEAD of a resource that does not exist: the Server SHOULD return 404, 410 or 403 "
      "without an Upload-Offset header")
def head_unknown(t):
    resp = status(head(t, unknown_path(t)), 404, 410, 403)
    no_header(resp, "Upload-Offset")


@case(CASES, "core-patch-415", EXT, SHOULD,
      "PATCH requests MUST use Content-Type: application/offset+octet-stream, otherwise the "
      "server SHOULD return 415 Unsupported Media Type (and store nothing)")
def patch_415(t):
    path, _ = create(t, 10)
    for ctype in ["application/octet-stream", "text/plain", None]:
        resp = t.c.request("PATCH", path, [("Upload-Offset", "0"), ("Content-Type", ctype)], b"abc")
        status(resp, 415)
    expect_state(t, path, 0, 10)


@case(CASES, "core-patch-409", EXT, MUST,
      "PATCH: if the offsets do not match, the Server MUST respond 409 Conflict without "
      "modifying the upload resource")
def patch_409(t):
    path, _ = create(t, 20)
    status(patch(t, path, 3, b"abc"), 409)
    expect_state(t, path, 0, 20)
    patch_ok(t, path, 0, b"0123456789")
    status(patch(t, path, 0, b"XXXXXXXXXX"), 409)   # an attempt to overwrite
    status(patch(t, path, 11, b"abc"), 409)         # a gap
    expect_state(t, path, 10, 20)


@case(CASES, "core-patch-204-offset", EXT, MUST,
      "PATCH: the Server MUST acknowledge successful PATCH requests with 204 No Content and "
      "the new Upload-Offset (previous offset + bytes received)")
def patch_204(t):
    path, _ = create(t, 25)
    patch_ok(t, path, 0, b"a" * 10)
    patch_ok(t, path, 10, b"b" * 10)
    patch_ok(t, path, 20, b"")          # an empty PATCH moves nothing
    patch_ok(t, path, 20, b"c" * 5)
    expect_state(t, path, 25, 25, "after three PATCHes")


@case(CASES, "core-patch-unknown", EXT, SHOULD,
      "PATCH to a non-existent resource: the Server SHOULD return 404 Not Found")
def patch_unknown(t):
    status(patch(t, unknown_path(t), 0, b"abc"), 404, 410, 403)


@case(CASES, "core-patch-interrupted-keeps-bytes", EXT, SHOULD,
      "The Server SHOULD accept PATCH requests whose body was interrupted and store as much "
      "of the received data as possible (HEAD then shows an advanced offset, never past what "
      "was sent)")
def patch_interrupted(t):
    total, sent = 2 * 1024 * 1024, 700_001
    body = data(total, 8)
    path, _ = create(t, total)
    t.c.request("PATCH", path, [("Content-Type", OFFSET_STREAM), ("Upload-Offset", "0"),
                                ("Content-Length", str(total))], body[:sent], cut=True)
    resume_after_cut(t, path, body, sent)


def resume_after_cut(t, path, body, sent):
    """Checks HEAD's offset after a cut body, then sends the rest from there.

    The server may still be committing what arrived: a 409 or 423 on the
    resuming PATCH means "look again", as a real client would.
    """
    for _ in range(10):
        offset = _settled_offset(t, path)
        check(0 < offset <= sent, f"after {sent} bytes then a cut, HEAD offset is {offset}", t.c.log[-1])
        resp = patch(t, path, offset, body[offset:])
        if resp.status not in (409, 423):
            break
        time.sleep(0.5)
    status(resp, 204)
    int_header(resp, "Upload-Offset", len(body))


def _settled_offset(t, path, wait=5.0):
    """HEAD until the server has finished with an interrupted request."""
    deadline, last = time.time() + wait, [-1, -1]
    while True:
        resp = head(t, path)
        if resp.status in (200, 204):
            offset = int(resp.h("Upload-Offset"))
            if offset > 0 and offset == last[-1] == last[-2] or time.time() > deadline:
                return offset
            last.append(offset)
        elif time.time() > deadline:
            status(resp, 200, 204)
        time.sleep(0.3)


@case(CASES, "core-method-override-patch", EXT, MUST,
      "X-HTTP-Method-Override: if present, the Server MUST interpret it as the request's method "
      "(POST + override PATCH appends)")
def override_patch(t):
    path, _ = create(t, 10)
    resp = t.c.request("POST", path, [("X-HTTP-Method-Override", "PATCH"),
                                      ("Content-Type", OFFSET_STREAM), ("Upload-Offset", "0")], b"12345")
    status(resp, 204)
    int_header(resp, "Upload-Offset", 5)
    expect_state(t, path, 5, 10, "after an overridden PATCH")


@case(CASES, "core-method-override-delete", EXT, MUST,
      "X-HTTP-Method-Override: DELETE on a POST terminates the upload")
def override_delete(t):
    path, _ = create(t, 10)
    status(t.c.request("POST", path, [("X-HTTP-Method-Override", "DELETE")]), 204)
    status(head(t, path), 404, 410)


@case(CASES, "core-method-override-head", EXT, MUST,
      "X-HTTP-Method-Override: HEAD on a POST answers as HEAD (Upload-Offset, Upload-Length)")
def override_head(t):
    path, _ = create(t, 10)
    patch_ok(t, path, 0, b"abcd")
    resp = status(t.c.request("POST", path, [("X-HTTP-Method-Override", "HEAD")]), 200, 204)
    int_header(resp, "Upload-Offset", 4)
    int_header(resp, "Upload-Length", 10)
    expect_state(t, path, 4, 10)


@case(CASES, "core-errors-have-text-body", EXT, CONTRACT,
      "Every refusal has a text/plain body message")
def error_bodies(t):
    path, _ = create(t, 5)
    for resp in [t.c.request("POST", t.c.base, [("Upload-Length", "1")], tus=False),
                 patch(t, path, 0, b"x", [("Content-Type", "text/plain")]),
                 patch(t, path, 2, b"x"), head(t, unknown_path(t)),
                 t.c.request("POST", t.c.base, [("Upload-Length", "-1")])]:
        check(400 <= resp.status < 500, f"expected a refusal, got {resp.status}", resp)
        if resp.request.startswith("HEAD"):
            continue
        ctype = resp.h("Content-Type") or ""
        check(ctype.startswith("text/plain") and resp.body.strip(),
              f"refusal {resp.status} has Content-Type {ctype!r} and body {resp.body[:60]!r}", resp)
