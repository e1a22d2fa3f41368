"""Role: conformance cases for creation, creation-with-upload,
creation-defer-length and termination (tus 1.0.0 extensions).

Each row quotes the requirement it checks; CONTRACT rows check partway's own
promise (as the README documents it) where the spec is silent.
"""

from tuslib import (CONTRACT, MUST, SHOULD, OFFSET_STREAM, Skip, b64, case, check, client_error, create,
                    expect_state, head, header, int_header, no_header, patch, patch_ok, state,
                    status, unknown_path)

CASES = []


# ---- creation ----------------------------------------------------------------

@case(CASES, "creation-201-location", "creation", MUST,
      "POST with Upload-Length: the Server MUST respond 201 Created with a Location (absolute "
      "or relative) of the new upload, whose offset is 0")
def created(t):
    path, resp = create(t, 100)
    check(path.startswith(t.c.base) and len(path) > len(t.c.base), f"Location path {path!r}", resp)
    expect_state(t, path, 0, 100, "a new upload")
    other, _ = create(t, 100)
    check(other != path, "two POSTs got the same Location", t.c.log[-1])


@case(CASES, "creation-requires-length", "creation", MUST,
      "The Client MUST include Upload-Length or Upload-Defer-Length: 1; a POST with neither "
      "is refused")
def requires_length(t):
    client_error(t.c.request("POST", t.c.base), 400)


@case(CASES, "creation-length-and-defer", "creation", CONTRACT,
      "Upload-Length and Upload-Defer-Length together: refused with 400 (spec silent; tusd and "
      "@tus/server do the same)")
def length_and_defer(t):
    status(t.c.request("POST", t.c.base, [("Upload-Length", "5"), ("Upload-Defer-Length", "1")]), 400)


@case(CASES, "creation-zero-length", "creation", MUST,
      "Upload-Length: 0 creates an upload that is complete at once (HEAD Upload-Offset 0 == "
      "Upload-Length 0, no PATCH needed)")
def zero_length(t):
    path, _ = create(t, 0)
    expect_state(t, path, 0, 0, "a zero-length upload")
    client_error(patch(t, path, 0, b"x"))
    expect_state(t, path, 0, 0, "a refused PATCH must not change a complete upload")


METADATA = ",".join([
    f"filename {b64('résumé 2024.pdf')}", "is_confidential", f"filetype {b64('application/pdf')}",
    "empty ", f"unpadded {b64('ab').rstrip('=')}", "note " + b64('a, b; c="d"'),
])


@case(CASES, "creation-metadata-echo", "creation", MUST,
      "Upload-Metadata: HEAD MUST return the Upload-Metadata header as specified by the Client "
      "during creation (byte-exact, incl. empty values and values without padding)")
def metadata_echo(t):
    path, _ = create(t, 4, metadata=METADATA)
    got = header(head(t, path), "Upload-Metadata")
    check(got == METADATA, f"HEAD Upload-Metadata {got!r} differs from the {METADATA!r} sent", t.c.log[-1])
    patch_ok(t, path, 0, b"data")
    check(state(t, path)[2] == METADATA, "metadata changed after completion", t.c.log[-1])


@case(CASES, "creation-413-max-size", "creation", MUST,
      "If the length of the upload exceeds the maximum (Tus-Max-Size), the Server MUST respond "
      "413 Request Entity Too Large; exactly the maximum is accepted")
def over_max(t):
    if t.max_size is None:
        raise Skip("the server advertises no Tus-Max-Size")
    status(t.c.request("POST", t.c.base, [("Upload-Length", str(t.max_size + 1))]), 413)
    path, _ = create(t, t.max_size)
    status(t.c.request("DELETE", path), 204)


@case(CASES, "creation-tus-max-size-advertised", "creation", SHOULD,
      "Tus-Max-Size SHOULD be set if the Server has a hard limit for the upload size")
def max_advertised(t):
    check(t.max_size is not None, "OPTIONS carries no Tus-Max-Size", t.options)


# ---- creation-with-upload -------------------------------------------------------

@case(CASES, "cwu-upload-offset", "creation-with-upload", MUST,
      "POST with a body (Content-Type: application/offset+octet-stream): the response MUST "
      "include Upload-Offset, the number of bytes accepted")
def cwu_offset(t):
    path, resp = create(t, 1000, body=b"x" * 100)
    int_header(resp, "Upload-Offset", 100)
    expect_state(t, path, 100, 1000, "after creation-with-upload")
    patch_ok(t, path, 100, b"y" * 900)


@case(CASES, "cwu-whole-upload", "creation-with-upload", MUST,
      "creation-with-upload carrying the whole upload completes it")
def cwu_whole(t):
    path, resp = create(t, 11, body=b"hello world")
    int_header(resp, "Upload-Offset", 11)
    expect_state(t, path, 11, 11, "a completed creation-with-upload")


@case(CASES, "cwu-content-type", "creation-with-upload", SHOULD,
      "The POST body MUST have Content-Type: application/offset+octet-stream; a body of another "
      "type is refused with 415")
def cwu_content_type(t):
    resp = t.c.request("POST", t.c.base, [("Upload-Length", "10"), ("Content-Type", "text/plain")], b"hello")
    status(resp, 415)


@case(CASES, "cwu-expect-100-continue", "creation-with-upload", SHOULD,
      "The Client SHOULD send Expect: 100-continue; the Server answers 100 Continue, takes the "
      "body, and reports Upload-Offset")
def cwu_expect(t):
    resp = t.c.request("POST", t.c.base, [("Upload-Length", "10"), ("Content-Type", OFFSET_STREAM),
                                          ("Expect", "100-continue")], b"0123456789", expect_continue=True)
    status(resp, 201)
    check(100 in resp.interim, "no 100 Continue before the final answer", resp)
    int_header(resp, "Upload-Offset", 10)


@case(CASES, "cwu-deferred", "creation-with-upload", MUST,
      "creation-with-upload on a deferred-length upload: Upload-Offset = bytes accepted, length "
      "still deferred")
def cwu_deferred(t):
    path, resp = create(t, defer=True, body=b"abcdef")
    int_header(resp, "Upload-Offset", 6)
    header(head(t, path), "Upload-Defer-Length", "1")
    expect_state(t, path, 6, None)


# ---- creation-defer-length -------------------------------------------------------

@case(CASES, "defer-head", "creation-defer-length", MUST,
      "While the length is unknown, every HEAD MUST include Upload-Defer-Length: 1 (and no "
      "Upload-Length)")
def defer_head(t):
    path, _ = create(t, defer=True)
    resp = head(t, path)
    header(resp, "Upload-Defer-Length", "1")
    no_header(resp, "Upload-Length")
    int_header(resp, "Upload-Offset", 0)
    patch_ok(t, path, 0, b"12345")
    resp = head(t, path)
    header(resp, "Upload-Defer-Length", "1")
    no_header(resp, "Upload-Length")


@case(CASES, "defer-declare-with-data", "creation-defer-length", MUST,
      "The Client MUST set Upload-Length in a PATCH once the length is known; HEAD then "
      "reports it instead of Upload-Defer-Length")
def defer_declare(t):
    path, _ = create(t, defer=True)
    patch_ok(t, path, 0, b"hello ")
    patch_ok(t, path, 6, b"world", [("Upload-Length", "11")])
    resp = head(t, path)
    int_header(resp, "Upload-Length", 11)
    int_header(resp, "Upload-Offset", 11)
    no_header(resp, "Upload-Defer-Length")


@case(CASES, "defer-declare-empty-patch", "creation-defer-length", MUST,
      "Upload-Length declared on a PATCH with an empty body after all bytes were sent "
      "(tus-js-client on a chunk boundary; tusd#798) completes the upload")
def defer_empty_patch(t):
    path, _ = create(t, defer=True)
    patch_ok(t, path, 0, b"a" * 1000)
    patch_ok(t, path, 1000, b"b" * 24)
    patch_ok(t, path, 1024, b"", [("Upload-Length", "1024")])
    expect_state(t, path, 1024, 1024, "after declaring the length on an empty PATCH")


@case(CASES, "defer-declare-before-data", "creation-defer-length", MUST,
      "Upload-Length declared on an empty PATCH at offset 0, then the data")
def defer_declare_first(t):
    path, _ = create(t, defer=True)
    patch_ok(t, path, 0, b"", [("Upload-Length", "8")])
    expect_state(t, path, 0, 8)
    patch_ok(t, path, 0, b"12345678")
    expect_state(t, path, 8, 8)


@case(CASES, "defer-length-immutable", "creation-defer-length", MUST,
      "Once Upload-Length is set it MUST NOT change: a PATCH naming another length is refused "
      "(4xx) and nothing changes")
def defer_immutable(t):
    path, _ = create(t, defer=True)
    patch_ok(t, path, 0, b"abc", [("Upload-Length", "10")])
    client_error(patch(t, path, 3, b"def", [("Upload-Length", "20")]))
    expect_state(t, path, 3, 10)
    fixed, _ = create(t, 10)
    client_error(patch(t, fixed, 0, b"abc", [("Upload-Length", "20")]))
    expect_state(t, fixed, 0, 10)


@case(CASES, "defer-length-below-offset", "creation-defer-length", MUST,
      "A declared Upload-Length below the bytes already received is refused (4xx); the upload "
      "stays deferred with its offset")
def defer_below(t):
    path, _ = create(t, defer=True)
    patch_ok(t, path, 0, b"x" * 50)
    client_error(patch(t, path, 50, b"", [("Upload-Length", "10")]))
    client_error(patch(t, path, 50, b"y", [("Upload-Length", "50")]))
    resp = head(t, path)
    header(resp, "Upload-Defer-Length", "1")
    int_header(resp, "Upload-Offset", 50)


# ---- termination ---------------------------------------------------------------

@case(CASES, "termination-204-then-404", "termination", MUST,
      "DELETE: the Server MUST respond 204 No Content; later requests to the URL SHOULD get "
      "404 Not Found or 410 Gone")
def terminate(t):
    path, _ = create(t, 10)
    patch_ok(t, path, 0, b"abc")
    status(t.c.request("DELETE", path), 204)
    status(head(t, path), 404, 410)
    status(patch(t, path, 3, b"def"), 404, 410)
    status(t.c.request("DELETE", path), 404, 410)


@case(CASES, "termination-completed-and-deferred", "termination", MUST,
      "DELETE works on a completed upload and on a deferred-length one (204, then gone)")
def terminate_states(t):
    done, _ = create(t, 3, body=b"abc")
    deferred, _ = create(t, defer=True, body=b"abc")
    for path in (done, deferred):
        status(t.c.request("DELETE", path), 204)
        status(head(t, path), 404, 410)


@case(CASES, "termination-unknown", "termination", SHOULD,
      "DELETE of an upload that does not exist: 404 Not Found")
def terminate_unknown(t):
    status(t.c.request("DELETE", unknown_path(t)), 404, 410)
