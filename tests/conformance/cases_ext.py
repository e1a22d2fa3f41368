"""Role: conformance cases for expiration, checksum and checksum-trailer
(tus 1.0.0 extensions).

Each row quotes the requirement it checks; CONTRACT rows check partway's own
promise (as the README documents it). The expiry wait needs --expire-seconds.
"""

import email.utils
import re
import time

from tuslib import (CONTRACT, MUST, SHOULD, Skip, case, check, client_error, create, data, digest,
                    expect_state, head, header, int_header, no_header, patch, patch_ok, status)

CASES = []
CONTRACT_ALGOS = ["sha1", "md5", "sha256", "sha512", "crc32", "crc32c"]
IMF_FIXDATE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|"
                         r"Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT")


# ---- expiration ----------------------------------------------------------------

def expires_at(t, resp):
    """Parses Upload-Expires: an IMF-fixdate (RFC 9110) in the future; returns epoch seconds."""
    value = header(resp, "Upload-Expires")
    check(IMF_FIXDATE.fullmatch(value) is not None, f"Upload-Expires {value!r} is not an IMF-fixdate", resp)
    when = email.utils.parsedate_to_datetime(value).timestamp()
    check(when > time.time() - 1, f"Upload-Expires {value!r} is in the past", resp)
    if t.expire_seconds is not None:
        check(when <= time.time() + t.expire_seconds + 2,
              f"Upload-Expires {value!r} is later than now + --expire-seconds {t.expire_seconds}", resp)
    return when


@case(CASES, "expiration-post", "expiration", MUST,
      "Upload-Expires MUST be included in the POST response if the expiration is known at "
      "creation; an RFC 9110 date in the future")
def expires_on_post(t):
    _, resp = create(t, 10)
    expires_at(t, resp)
    _, resp = create(t, 10, body=b"abc")
    expires_at(t, resp)


@case(CASES, "expiration-patch", "expiration", MUST,
      "The Server MUST include Upload-Expires in every PATCH response if the upload is going "
      "to expire")
def expires_on_patch(t):
    path, _ = create(t, 10)
    expires_at(t, patch_ok(t, path, 0, b"abc"))
    expires_at(t, patch_ok(t, path, 3, b"def"))


@case(CASES, "expiration-head", "expiration", CONTRACT,
      "Upload-Expires on HEAD responses of unfinished uploads")
def expires_on_head(t):
    path, _ = create(t, defer=True)
    expires_at(t, head(t, path))


@case(CASES, "expiration-not-on-completed", "expiration", CONTRACT,
      "Completed (non-partial) uploads never expire and carry no Upload-Expires")
def completed_never_expires(t):
    path, _ = create(t, 4)
    no_header(patch_ok(t, path, 0, b"done"), "Upload-Expires")
    no_header(head(t, path), "Upload-Expires")


@case(CASES, "expiration-expired-is-gone", "expiration", SHOULD,
      "Requests for an expired upload SHOULD be answered 404 Not Found or 410 Gone (HEAD and "
      "PATCH); a completed upload created alongside stays")
def expired(t):
    if t.expire_seconds is None:
        raise Skip("needs --expire-seconds N (the server's --expire-after)")
    path, _ = create(t, 10)
    patch_ok(t, path, 0, b"abc")
    done, _ = create(t, 3, body=b"xyz")
    deadline = time.time() + t.expire_seconds + 6
    time.sleep(t.expire_seconds)
    while head(t, path).status in (200, 204) and time.time() < deadline:
        time.sleep(0.5)
    status(t.c.log[-1], 404, 410)
    no_header(t.c.log[-1], "Upload-Offset")
    status(patch(t, path, 3, b"def"), 404, 410)
    expect_state(t, done, 3, 3, "a completed upload must not expire")


# ---- checksum -------------------------------------------------------------------

@case(CASES, "checksum-options", "checksum", MUST,
      "Tus-Checksum-Algorithm MUST be in the OPTIONS response; the Server MUST support sha1; "
      "names are lowercase ASCII")
def checksum_options(t):
    check(t.algorithms, "OPTIONS lacks Tus-Checksum-Algorithm", t.options)
    check("sha1" in t.algorithms, f"sha1 missing from {t.algorithms}", t.options)
    for a in t.algorithms:
        check(re.fullmatch(r"[a-z0-9-]+", a) is not None, f"algorithm name {a!r} is not lowercase ASCII", t.options)
    missing = [a for a in CONTRACT_ALGOS if a not in t.algorithms]
    check(not missing, f"contract algorithms not advertised: {missing}", t.options)


def _good_checksum(algo):
    def run(t):
        body = data(70_001, 9)
        path, _ = create(t, len(body) + 5)
        patch_ok(t, path, 0, body, [("Upload-Checksum", f"{algo} {digest(algo, body)}")])
        patch_ok(t, path, len(body), b"tail!", [("Upload-Checksum", f"{algo} {digest(algo, b'tail!')}")])
        expect_state(t, path, len(body) + 5, len(body) + 5, "after checksummed PATCHes")
    return run


for _algo in CONTRACT_ALGOS:
    case(CASES, f"checksum-{_algo}-ok", "checksum", MUST if _algo == "sha1" else CONTRACT,
         f"Upload-Checksum: {_algo} <base64 digest>: if the checksums match, the Server MUST "
         "respond 204 and accept the chunk")(_good_checksum(_algo))


@case(CASES, "checksum-other-advertised-ok", "checksum", MUST,
      "Every algorithm listed in Tus-Checksum-Algorithm is honoured (match -> 204)")
def other_algos(t):
    extra = [a for a in t.algorithms if a not in CONTRACT_ALGOS]
    if not extra:
        raise Skip("no algorithms advertised beyond the contract's")
    for algo in extra:
        if digest(algo, b"") is None:
            raise Skip(f"this suite cannot compute {algo}")
        _good_checksum(algo)(t)


@case(CASES, "checksum-unsupported-400", "checksum", MUST,
      "Unsupported checksum algorithm: the Server MUST respond 400 Bad Request; the chunk is "
      "discarded and the offset MUST NOT change")
def unsupported(t):
    path, _ = create(t, 10)
    status(patch(t, path, 0, b"abc", [("Upload-Checksum", "nosuchalgo AAAA")]), 400)
    expect_state(t, path, 0, 10)


@case(CASES, "checksum-mismatch-460", "checksum", MUST,
      "Checksum mismatch: the Server MUST respond 460 Checksum Mismatch, discard the chunk, "
      "and the offset MUST NOT change; the same chunk with the right checksum then succeeds")
def mismatch(t):
    path, _ = create(t, 20)
    patch_ok(t, path, 0, b"0123456789")
    status(patch(t, path, 10, b"abcdefghij", [("Upload-Checksum", f"sha1 {digest('sha1', b'other')}")]), 460)
    expect_state(t, path, 10, 20, "after a 460")
    patch_ok(t, path, 10, b"abcdefghij", [("Upload-Checksum", f"sha1 {digest('sha1', b'abcdefghij')}")])


@case(CASES, "checksum-mismatch-large-body", "checksum", CONTRACT,
      "A mismatching body larger than an S3 part (6 MiB + 3) gets 460 and commits nothing, even "
      "if some of it already reached the store as a part")
def mismatch_large(t):
    body = data(6 * 1024 * 1024 + 3, 10)
    path, _ = create(t, len(body))
    status(patch(t, path, 0, body, [("Upload-Checksum", f"sha256 {digest('sha256', b'x')}")]), 460)
    expect_state(t, path, 0, len(body), "after a 460 on a multi-part body")
    patch_ok(t, path, 0, body, [("Upload-Checksum", f"sha256 {digest('sha256', body)}")])


@case(CASES, "checksum-on-creation-with-upload", "checksum", CONTRACT,
      "Upload-Checksum on a creation-with-upload POST: match -> 201 with the bytes taken; "
      "mismatch -> 460")
def checksum_post(t):
    _, resp = create(t, 10, body=b"12345", headers=[("Upload-Checksum", f"sha1 {digest('sha1', b'12345')}")])
    int_header(resp, "Upload-Offset", 5)
    bad = t.c.request("POST", t.c.base, [("Upload-Length", "10"), ("Content-Type", "application/offset+octet-stream"),
                                         ("Upload-Checksum", f"sha1 {digest('sha1', b'nope')}")], b"12345")
    status(bad, 460)


# ---- checksum-trailer -------------------------------------------------------------

def _trailer_patch(t, path, offset, chunks, trailer, **kw):
    h = [("Content-Type", "application/offset+octet-stream"), ("Upload-Offset", str(offset)),
         ("Trailer", "Upload-Checksum")]
    return t.c.request("PATCH", path, h, chunks=chunks, trailers=[("Upload-Checksum", trailer)], **kw)


@case(CASES, "checksum-trailer-ok", "checksum-trailer", MUST,
      "checksum-trailer: Upload-Checksum sent as an HTTP trailer after a chunked body is "
      "verified; a match -> 204 with the new offset")
def trailer_ok(t):
    chunks = [b"hello ", b"chunked ", b"world"]
    body = b"".join(chunks)
    path, _ = create(t, len(body))
    resp = status(_trailer_patch(t, path, 0, chunks, f"sha1 {digest('sha1', body)}"), 204)
    int_header(resp, "Upload-Offset", len(body))


@case(CASES, "checksum-trailer-mismatch", "checksum-trailer", MUST,
      "checksum-trailer: a mismatching trailer -> 460 and the offset MUST NOT change")
def trailer_bad(t):
    path, _ = create(t, 19)
    status(_trailer_patch(t, path, 0, [b"hello ", b"chunked ", b"world"], f"sha1 {digest('sha1', b'x')}"), 460)
    expect_state(t, path, 0, 19, "after a 460 on a trailer")


@case(CASES, "checksum-trailer-unsupported", "checksum-trailer", MUST,
      "checksum-trailer: an unsupported algorithm in the trailer -> 400, offset unchanged")
def trailer_unsupported(t):
    path, _ = create(t, 5)
    status(_trailer_patch(t, path, 0, [b"hello"], "nosuchalgo AAAA"), 400)
    expect_state(t, path, 0, 5)


@case(CASES, "checksum-trailer-cut", "checksum-trailer", CONTRACT,
      "A body cut before a promised checksum arrives commits nothing")
def trailer_cut(t):
    path, _ = create(t, 100_000)
    _trailer_patch(t, path, 0, [data(60_000, 11)], "sha1 AAAA", cut=True)
    time.sleep(0.5)
    expect_state(t, path, 0, 100_000, "after a cut chunked body whose checksum never came")


@case(CASES, "checksum-trailer-missing", "checksum-trailer", SHOULD,
      "A body that announces Trailer: Upload-Checksum but ends without it is refused (4xx) "
      "and commits nothing: unverified bytes are never committed")
def trailer_missing(t):
    path, _ = create(t, 5)
    h = [("Content-Type", "application/offset+octet-stream"), ("Upload-Offset", "0"),
         ("Trailer", "Upload-Checksum")]
    client_error(t.c.request("PATCH", path, h, chunks=[b"hello"]))
    expect_state(t, path, 0, 5)
