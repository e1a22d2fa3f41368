"""Role: conformance cases for concatenation (tus 1.0.0 extensions) and for
partway's GET download (README, Downloads), which also verifies concatenated content.

Each row quotes the requirement it checks; CONTRACT rows check partway's own
promise (as the README documents it).
"""

import re

from tuslib import (CONTRACT, MIB, MUST, OFFSET_STREAM, SHOULD, Skip, b64, case, check, client_error, create,
                    data, expect_state, head, header, int_header, no_header, patch, patch_ok,
                    state, status, unknown_path, upload)

CASES = []
PARTIAL = [("Upload-Concat", "partial")]


def partial(t, body, *, finish=True, metadata=None):
    path, _ = create(t, len(body), headers=PARTIAL, metadata=metadata)
    if finish and body:
        patch_ok(t, path, 0, body)
    return path


def final(t, urls, metadata=None, expect=201):
    h = [("Upload-Concat", "final;" + " ".join(urls))]
    if metadata is not None:
        h.append(("Upload-Metadata", metadata))
    resp = t.c.request("POST", t.c.base, h)
    if expect != 201:
        return resp
    status(resp, 201)
    return t.c.path_of(header(resp, "Location")), resp


def absolute(t, path):
    return t.c.origin + path


def get(t, path, headers=()):
    return t.c.request("GET", path, headers, tus=False)


# ---- concatenation ------------------------------------------------------------------

@case(CASES, "concat-partial-head", "concatenation", MUST,
      "HEAD on a partial upload MUST include Upload-Concat as received (partial) and "
      "Upload-Offset")
def partial_head(t):
    path = partial(t, b"abc", finish=False)
    resp = head(t, path)
    header(resp, "Upload-Concat", "partial")
    int_header(resp, "Upload-Offset", 0)
    int_header(resp, "Upload-Length", 3)


def _final_case(make_url, sizes, seed):
    def run(t):
        bodies = [data(n, seed + i) for i, n in enumerate(sizes)]
        parts = [partial(t, b) for b in bodies]
        urls = [make_url(t, p) for p in parts]
        path, _ = final(t, urls)
        resp = head(t, path)
        header(resp, "Upload-Concat", "final;" + " ".join(urls))
        total = int_header(resp, "Upload-Length", sum(sizes))
        int_header(resp, "Upload-Offset", total)
        if "expiration" in t.groups:
            no_header(resp, "Upload-Expires")  # contract: completed non-partial uploads never expire
        t.concat_finals.append((path, b"".join(bodies)))
    return run


case(CASES, "concat-final-absolute-urls", "concatenation", MUST,
     "POST Upload-Concat: final;<absolute URLs> -> 201; HEAD echoes Upload-Concat as received, "
     "Upload-Length MUST be the sum and Upload-Offset == Upload-Length once done (partials "
     "3 B, 5 MiB + 123 B, 1 MiB + 7 B: under 5 MiB and off the 5 MiB grid)")(
    _final_case(absolute, [3, 5 * MIB + 123, MIB + 7], 20))
case(CASES, "concat-final-relative-urls", "concatenation", MUST,
     "Upload-Concat final URLs MAY be relative (/files/<id>); same result")(
    _final_case(lambda t, p: p, [6 * MIB + 1, 10, 5 * MIB - 1], 30))
case(CASES, "concat-zero-length-partial", "concatenation", CONTRACT,
     "Any partial sizes work, including an empty partial between others")(
    _final_case(absolute, [100, 0, 200], 40))


@case(CASES, "concat-final-metadata", "concatenation", MUST,
      "The partials' metadata SHALL NOT be copied to the final; the final carries the "
      "Upload-Metadata of its own POST")
def final_metadata(t):
    a = partial(t, b"aaa", metadata=f"filename {b64('a.txt')}")
    b = partial(t, b"bbb", metadata=f"filename {b64('b.txt')}")
    meta = f"filename {b64('final.txt')}"
    path, _ = final(t, [absolute(t, a), absolute(t, b)], metadata=meta)
    check(state(t, path)[2] == meta, f"final's metadata is {t.c.log[-1].h('Upload-Metadata')!r}", t.c.log[-1])
    path, _ = final(t, [absolute(t, a), absolute(t, b)])
    check(state(t, path)[2] in (None, ""), "a final without metadata got the partials' metadata", t.c.log[-1])


@case(CASES, "concat-patch-final-403", "concatenation", MUST,
      "PATCH to a final upload: the Server MUST respond 403 Forbidden and MUST NOT modify the "
      "final or the partials")
def patch_final(t):
    a, b = partial(t, b"12345"), partial(t, b"678")
    path, _ = final(t, [a, b])
    for offset in (0, 8):
        status(patch(t, path, offset, b"zz"), 403)
    expect_state(t, path, 8, 8, "the final after a refused PATCH")
    expect_state(t, a, 5, 5, "a partial after a refused PATCH to its final")
    expect_state(t, b, 3, 3, "a partial after a refused PATCH to its final")


@case(CASES, "concat-final-with-length-400", "concatenation", MUST,
      "The Client MUST NOT include Upload-Length in the final POST: refused with 400")
def final_with_length(t):
    a = partial(t, b"abc")
    resp = t.c.request("POST", t.c.base, [("Upload-Concat", f"final;{a}"), ("Upload-Length", "3")])
    status(resp, 400)


@case(CASES, "concat-final-unfinished-partial", "concatenation", SHOULD,
      "The final SHOULD be created only after all partials are complete (without "
      "concatenation-unfinished): naming an unfinished partial is refused (4xx)")
def final_unfinished(t):
    if "concatenation-unfinished" in t.extensions:
        raise Skip("concatenation-unfinished is advertised")
    done, started = partial(t, b"abc"), partial(t, b"defg", finish=False)
    patch_ok(t, started, 0, b"de")
    client_error(final(t, [done, started], expect=400))
    expect_state(t, started, 2, 4, "the unfinished partial")
    patch_ok(t, started, 2, b"fg")


@case(CASES, "concat-final-unknown-or-not-partial", "concatenation", CONTRACT,
      "Every partial must exist and be a partial upload: a final naming an unknown upload, a "
      "non-partial upload, or nothing, is refused (4xx)")
def final_bad_refs(t):
    a = partial(t, b"abc")
    plain = upload(t, b"plain")
    client_error(final(t, [a, unknown_path(t)], expect=400))
    client_error(final(t, [a, plain], expect=400))
    client_error(final(t, [], expect=400))
    client_error(t.c.request("POST", t.c.base, [("Upload-Concat", "bogus"), ("Upload-Length", "3")]))
    expect_state(t, a, 3, 3)


# ---- download (partway's GET) ----------------------------------------------------

@case(CASES, "download-whole", "download", CONTRACT,
      "GET of a completed upload (no Tus-Resumable needed): 200, the exact bytes, "
      "Content-Length, Accept-Ranges: bytes, a strong ETag")
def download_whole(t):
    for body in [b"", data(5 * MIB + 17, 50)]:
        path = upload(t, body)
        resp = status(get(t, path), 200)
        check(resp.body == body, f"GET returned {len(resp.body)} bytes that differ from the upload", resp)
        int_header(resp, "Content-Length", len(body))
        header(resp, "Accept-Ranges", "bytes")
        etag = header(resp, "ETag")
        check(re.fullmatch(r'"[^"]*"', etag) is not None, f"ETag {etag!r} is not a strong ETag", resp)


@case(CASES, "download-concat-final-content", "download", CONTRACT,
      "GET of a final upload returns the partials' bytes concatenated in the listed order")
def download_concat(t):
    if not t.concat_finals:
        a, b = partial(t, b"first-"), partial(t, b"second")
        t.concat_finals.append((final(t, [b, a])[0], b"secondfirst-"))
    for path, expected in t.concat_finals:
        resp = status(get(t, path), 200)
        check(resp.body == expected, f"final content ({len(resp.body)} bytes) differs from the "
              f"partials concatenated ({len(expected)} bytes)", resp)


@case(CASES, "download-content-type-disposition", "download", CONTRACT,
      "Content-Type from metadata filetype (else application/octet-stream); Content-Disposition: "
      "attachment; filename=\"<ascii-safe>\"; filename*=UTF-8''<pct-encoded>; no header injection")
def download_headers(t):
    name = 'résumé "q"\r\nX-Injected: 1;.txt'
    path = upload(t, b"hi", metadata=f"filename {b64(name)},filetype {b64('text/plain')}")
    resp = status(get(t, path), 200)
    check((resp.h("Content-Type") or "").startswith("text/plain"), "Content-Type is not text/plain", resp)
    no_header(resp, "X-Injected")
    cd = header(resp, "Content-Disposition")
    check(cd.startswith("attachment"), f"Content-Disposition {cd!r} is not attachment", resp)
    m = re.search(r'filename="([^"\\]*)"', cd)
    check(m is not None and all(32 <= ord(ch) < 127 for ch in m.group(1)),
          f"Content-Disposition filename is not a safe ASCII quoted string: {cd!r}", resp)
    check("filename*=UTF-8''" in cd and "r%C3%A9sum%C3%A9" in cd, f"filename* missing or wrong: {cd!r}", resp)
    plain = status(get(t, upload(t, b"x")), 200)
    header(plain, "Content-Type", "application/octet-stream")


@case(CASES, "download-ranges", "download", CONTRACT,
      "Range bytes=a-b, a- and -n -> 206 with Content-Range; unsatisfiable -> 416 with "
      "Content-Range: bytes */LEN; several ranges -> 200 with the whole object")
def download_ranges(t):
    body = data(1000, 60)
    path = upload(t, body)
    for spec, lo, hi in [("2-5", 2, 5), ("990-", 990, 999), ("-7", 993, 999), ("0-0", 0, 0), ("900-5000", 900, 999)]:
        resp = status(get(t, path, [("Range", f"bytes={spec}")]), 206)
        header(resp, "Content-Range", f"bytes {lo}-{hi}/1000")
        check(resp.body == body[lo:hi + 1], f"range {spec} returned the wrong bytes", resp)
    resp = status(get(t, path, [("Range", "bytes=1000-2000")]), 416)
    header(resp, "Content-Range", "bytes */1000")
    resp = status(get(t, path, [("Range", "bytes=0-1,5-6")]), 200)
    check(resp.body == body, "a multi-range request did not return the whole object", resp)


@case(CASES, "download-conditional", "download", CONTRACT,
      "If-None-Match with the ETag -> 304; If-Range with another validator -> 200 whole; "
      "If-Range with the ETag -> 206")
def download_conditional(t):
    body = data(100, 61)
    path = upload(t, body)
    etag = header(status(get(t, path), 200), "ETag")
    status(get(t, path, [("If-None-Match", etag)]), 304)
    resp = status(get(t, path, [("Range", "bytes=0-9"), ("If-Range", '"not-the-etag"')]), 200)
    check(resp.body == body, "If-Range mismatch did not return the whole object", resp)
    resp = status(get(t, path, [("Range", "bytes=0-9"), ("If-Range", etag)]), 206)
    check(resp.body == body[:10], "If-Range match returned the wrong bytes", resp)


@case(CASES, "download-unfinished-or-unknown", "download", CONTRACT,
      "GET of an unfinished upload -> 409 with a message; of an unknown one -> 404")
def download_refused(t):
    path, _ = create(t, 10)
    patch_ok(t, path, 0, b"abc")
    resp = status(get(t, path), 409)
    check(resp.body.strip() != b"", "409 without a message", resp)
    status(get(t, unknown_path(t)), 404)
    expect_state(t, path, 3, 10)


@case(CASES, "download-interrupted-then-resumed", "download", CONTRACT,
      "A PATCH cut after more than one S3 part (6 MiB + 5 of 12 MiB) keeps what arrived; "
      "resuming from HEAD's offset yields the exact bytes on GET")
def download_resumed(t):
    from cases_core import resume_after_cut
    body = data(12 * MIB, 70)
    path, _ = create(t, len(body))
    sent = 6 * MIB + 5
    t.c.request("PATCH", path, [("Content-Type", OFFSET_STREAM), ("Upload-Offset", "0"),
                                ("Content-Length", str(len(body)))], body[:sent], cut=True)
    resume_after_cut(t, path, body, sent)
    resp = status(get(t, path), 200)
    check(resp.body == body, "the resumed upload's content differs from what was sent", resp)
