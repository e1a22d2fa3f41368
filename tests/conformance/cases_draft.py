"""Role: conformance cases for Resumable Uploads for HTTP (draft-ietf-httpbis-resumable-upload).

Each row checks one server requirement of the draft, quoted with its
section in the -12 text (interop 9) unless it names an older version, and
runs it at interop 6 (-04/-05, what tus-js-client's 'ietf-draft-05' speaks)
and 9 (-12) unless it says otherwise. Requests carry
Upload-Draft-Interop-Version and no Tus-Resumable. CONTRACT rows are
partway's choices where the draft leaves one (strict parsing: 400).
"""

import json

from tuslib import CONTRACT, MUST, case, check, client_error, header, int_header, no_header, status

CASES = []
EXT = "draft"
VERSIONS = (6, 9)
TYPES = "https://iana.org/assignments/http-problem-types#"
PARTIAL = ("Content-Type", "application/partial-upload")


def req(t, v, method, path, headers=(), body=None, **kw):
    h = [("Upload-Draft-Interop-Version", str(v))] + list(headers)
    return t.c.request(method, path, h, body, tus=False, **kw)


def created(t, v, headers=(), body=None, complete="?0"):
    """A new upload by draft creation; returns (path, response)."""
    resp = status(req(t, v, "POST", t.c.base, [("Upload-Complete", complete)] + list(headers), body), 201)
    return t.c.path_of(header(resp, "Location")), resp


def append(t, v, path, offset, body, complete="?0", headers=()):
    h = [PARTIAL, ("Upload-Offset", str(offset)), ("Upload-Complete", complete)] + list(headers)
    return req(t, v, "PATCH", path, h, body)


def problem(resp, kind):
    header(resp, "Content-Type", "application/problem+json")
    body = json.loads(resp.body)
    check(body.get("type") == TYPES + kind, f"problem type {body.get('type')!r}, expected {kind}", resp)
    return body


def draft_case(id, severity, clause):
    """`case` for this table, run at every version of VERSIONS."""
    def add(fn):
        def run(t):
            for v in VERSIONS:
                fn(t, v)
        case(CASES, "draft-" + id, EXT, severity, clause)(run)
        return fn
    return add


@draft_case("creation-location", MUST,
            "4.2.2: an incomplete creation fully processed MUST include Location and Upload-Limit; "
            "201 is RECOMMENDED; Upload-Offset while active (interop 6)")
def creation_location(t, v):
    path, resp = created(t, v, [("Upload-Length", "10")], b"hello")
    header(resp, "Upload-Complete", "?0")
    int_header(resp, "Upload-Offset", 5)
    limits = header(resp, "Upload-Limit")
    check("min-size=0" in limits and "max-size=10" in limits, f"Upload-Limit {limits!r}", resp)
    header(resp, "Upload-Draft-Interop-Version", str(v))


@draft_case("creation-records-length", MUST,
            "4.2.2: the server MUST record the length if Upload-Length or Upload-Complete: ?1 is sent")
def creation_length(t, v):
    path, _ = created(t, v, [("Upload-Length", "7")])
    int_header(status(req(t, v, "HEAD", path), 204, 200), "Upload-Length", 7)
    whole, resp = created(t, v, body=b"complete", complete="?1")
    header(resp, "Upload-Complete", "?1")
    head = status(req(t, v, "HEAD", whole), 204, 200)
    int_header(head, "Upload-Length", 8)
    header(head, "Upload-Complete", "?1")


@draft_case("lengths-consistent", MUST,
            "4.1.3: lengths indicated in one request MUST match, and stay consistent across requests "
            "(inconsistent-upload-length, 400)")
def lengths(t, v):
    resp = client_error(req(t, v, "POST", t.c.base, [("Upload-Complete", "?1"), ("Upload-Length", "3")],
                            b"four"), 400)
    problem(resp, "inconsistent-upload-length")
    path, _ = created(t, v, [("Upload-Length", "6")])
    problem(client_error(append(t, v, path, 0, b"abc", "?1"), 400), "inconsistent-upload-length")


@draft_case("head", MUST,
            "4.3.2: offset retrieval MUST include Upload-Offset, Upload-Complete, Upload-Length (when "
            "supplied) and Upload-Limit; SHOULD send Cache-Control: no-store")
def head(t, v):
    path, _ = created(t, v, [("Upload-Length", "9")], b"abc")
    resp = status(req(t, v, "HEAD", path), 204, 200)
    int_header(resp, "Upload-Offset", 3)
    header(resp, "Upload-Complete", "?0")
    int_header(resp, "Upload-Length", 9)
    header(resp, "Upload-Limit")
    header(resp, "Cache-Control", "no-store")


@draft_case("head-refuses-offset", MUST,
            "interop 6: a HEAD carrying Upload-Offset or Upload-Complete MUST be answered 400")
def head_refuses(t, v):
    path, _ = created(t, v)
    client_error(req(t, v, "HEAD", path, [("Upload-Offset", "0")]), 400)
    client_error(req(t, v, "HEAD", path, [("Upload-Complete", "?0")]), 400)


@draft_case("append-mismatch", MUST,
            "4.4.2: an offset mismatch MUST get 409 with Upload-Complete: ?0 and the correct "
            "Upload-Offset; 7.1 mismatching-upload-offset with expected-offset and provided-offset")
def mismatch(t, v):
    path, _ = created(t, v, [("Upload-Length", "10")], b"hello")
    resp = status(append(t, v, path, 2, b"xyz"), 409)
    int_header(resp, "Upload-Offset", 5)
    header(resp, "Upload-Complete", "?0")
    body = problem(resp, "mismatching-upload-offset")
    check((body.get("expected-offset"), body.get("provided-offset")) == (5, 2), f"members {body}", resp)
    int_header(status(req(t, v, "HEAD", path), 204, 200), "Upload-Offset", 5)


@draft_case("append-completes", MUST,
            "4.4.2: a completing append fully processed MUST include Upload-Complete: ?1; the "
            "offset MUST NOT decrease")
def completes(t, v):
    path, _ = created(t, v, [("Upload-Length", "8")], b"four")
    part = append(t, v, path, 4, b"56")
    check(200 <= part.status < 300, f"append got {part.status}", part)
    int_header(part, "Upload-Offset", 6)
    done = append(t, v, path, 6, b"78", "?1")
    check(200 <= done.status < 300, f"completing append got {done.status}", done)
    header(done, "Upload-Complete", "?1")
    int_header(done, "Upload-Offset", 8)
    got = status(t.c.request("GET", path, tus=False), 200)
    check(got.body == b"four5678", f"stored {got.body!r}", got)


@draft_case("append-media-type", MUST,
            "interop 6 (-04): an append MUST use Content-Type: application/partial-upload")
def media_type(t, v):
    path, _ = created(t, v)
    resp = req(t, v, "PATCH", path, [("Upload-Offset", "0"), ("Upload-Complete", "?0")], b"x")
    client_error(resp, 415)


@draft_case("interrupted-not-complete", MUST,
            "4.4.2: an interrupted append MUST NOT make the upload complete")
def interrupted(t, v):
    path, _ = created(t, v)
    h = [PARTIAL, ("Upload-Offset", "0"), ("Upload-Complete", "?1")]
    req(t, v, "PATCH", path, h, chunks=[b"abc"], cut=True)
    resp = status(req(t, v, "HEAD", path), 204, 200)
    header(resp, "Upload-Complete", "?0")


@draft_case("past-length", MUST,
            "4.4.2: the server MUST prevent the offset from exceeding a known length")
def past_length(t, v):
    path, _ = created(t, v, [("Upload-Length", "3")])
    client_error(append(t, v, path, 0, b"abcdef"))
    resp = status(req(t, v, "HEAD", path), 204, 200)
    check(int_header(resp, "Upload-Offset") <= 3, "offset past the length", resp)


@draft_case("completed-upload", MUST,
            "interop 6: an append to a completed upload MUST NOT modify it and MUST be rejected "
            "(completed-upload, 400)")
def completed(t, v):
    path, _ = created(t, v, body=b"done", complete="?1")
    problem(client_error(append(t, v, path, 4, b"more", "?1"), 400), "completed-upload")
    got = status(t.c.request("GET", path, tus=False), 200)
    check(got.body == b"done", f"stored {got.body!r}", got)


@draft_case("cancellation", MUST,
            "interop 6 to 8: a successful DELETE MUST answer 204; then the upload is inactive (404)")
def cancellation(t, v):
    path, _ = created(t, v)
    status(req(t, v, "DELETE", path), 204)
    status(req(t, v, "HEAD", path), 404)


@draft_case("options-limits", MUST,
            "4.1.4: OPTIONS to a resource that can create uploads MUST carry Upload-Limit, with "
            "min-size=0 when there are no limits; interop 8: Accept-Patch lists application/partial-upload")
def options(t, v):
    resp = status(req(t, v, "OPTIONS", t.c.base), 200, 204)
    check("min-size=0" in header(resp, "Upload-Limit"), "Upload-Limit lacks min-size=0", resp)
    check("application/partial-upload" in header(resp, "Accept-Patch"), "Accept-Patch", resp)


@draft_case("limits-on-413", MUST,
            "interop 8: a 413 caused by the limits MUST include Upload-Limit")
def limits_413(t, v):
    huge = "999999999999999"  # the largest structured-field Integer of 15 digits, past 5 TiB
    resp = status(req(t, v, "POST", t.c.base, [("Upload-Complete", "?0"), ("Upload-Length", huge)]), 413)
    header(resp, "Upload-Limit")


@draft_case("max-age", MUST,
            "4.1.4 (interop 7+: max-age; interop 6: expires): the remaining lifetime in seconds, "
            "announced while an upload can expire")
def max_age(t, v):
    _, resp = created(t, v)
    key = "expires=" if v == 6 else "max-age="
    if t.args.expire_seconds is None:
        no_header(resp, "Upload-Expires")
        return
    check(key in header(resp, "Upload-Limit"), f"Upload-Limit lacks {key}", resp)


@draft_case("strict-fields", CONTRACT,
            "partway: a draft header that is not a valid structured field, or is sent twice, is a 400")
def strict(t, v):
    for name, value in (("Upload-Complete", "true"), ("Upload-Length", "-1"), ("Upload-Length", "1.5")):
        client_error(req(t, v, "POST", t.c.base, [("Upload-Complete", "?0"), (name, value)]), 400)
    client_error(req(t, v, "POST", t.c.base, [("Upload-Complete", "?0"), ("Upload-Complete", "?1")]), 400)


@case(CASES, "draft-interop-version", EXT, CONTRACT,
      "partway: interop versions 3 to 9 are served; another, or a malformed one, is a 400 that says so")
def interop(t):
    for v in ("2", "10", "six"):
        client_error(req(t, v, "POST", t.c.base, [("Upload-Complete", "?0")]), 400)
    resp = status(req(t, 3, "POST", t.c.base, [("Upload-Incomplete", "?1")]), 201)
    header(resp, "Upload-Incomplete", "?1")


@draft_case("creation-metadata", CONTRACT,
            "partway: a creation's Content-Type and Content-Disposition filename are kept as the "
            "filetype and filename metadata, which GET serves")
def creation_metadata(t, v):
    h = [("Content-Type", "text/plain"), ("Content-Disposition", 'attachment; filename="a.txt"')]
    path, _ = created(t, v, h, b"text", complete="?1")
    got = status(t.c.request("GET", path, tus=False), 200)
    check(got.h("Content-Type") == "text/plain", f"Content-Type {got.h('Content-Type')!r}", got)
    check("a.txt" in (got.h("Content-Disposition") or ""), "Content-Disposition lacks the filename", got)
