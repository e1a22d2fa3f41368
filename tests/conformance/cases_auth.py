"""Role: authorization conformance cases (partway's bearer tokens, RFC 6750).

Run only with --token-secret-file (the HMAC secret the server verifies tokens
with); every case SKIPs without it. The suite's client then sends a token for
--token-subject on every request; these cases mint others: none, garbage,
expired, another subject's (`<subject>-other`), tokens carrying `partway`
limits, and --token-admin-subject's. Rows quote RFC 6750 / RFC 9110 where
they ask for the behaviour, partway's contract (CONTRACT) otherwise. After
every refusal the uploads it aimed at are re-read with the good token.
"""

import re
import time
from types import SimpleNamespace

from cases_concat import absolute, final, get, partial
from tuslib import (CONTRACT, MUST, SHOULD, Skip, b64, case, check, create, expect_state, header,
                    mint, patch, patch_ok, status, unknown_path)

CASES = []
BODY = b"0123456789"
DONE = b"all done!"


def auth_case(id, severity, clause):
    """`case` for this table: group `auth`, skipped without a secret."""
    def add(fn):
        def run(t):
            if t.secret is None:
                raise Skip("needs --token-secret-file (the file the server's --auth-jwt-secret-file reads)")
            fn(t)
        case(CASES, "auth-" + id, "auth", severity, clause)(run)
        return fn
    return add


def token(t, sub="", ttl=3600, **claims):
    """A token signed with the server's secret; sub "" is the suite's subject, None omits it."""
    body = {"sub": t.subject if sub == "" else sub, "exp": int(time.time()) + ttl, **claims}
    return mint(t.secret, {k: v for k, v in body.items() if v is not None})


def as_(t, tok):
    """A view of `t` whose requests carry `tok` (None: no Authorization); same log."""
    return SimpleNamespace(c=t.c.as_token(tok), subject=t.subject)


def other(t):
    return as_(t, token(t, sub=t.subject + "-other"))


def victims(t):
    """An unfinished upload (10 of 100 bytes) and a finished one, both of the suite's subject."""
    up, _ = create(t, 100)
    patch_ok(t, up, 0, BODY)
    done, _ = create(t, len(DONE), body=DONE)
    return up, done


def unchanged(t, up, done, why="a refused request must not change the upload"):
    expect_state(t, up, 10, 100, why)
    resp = status(get(t, done), 200)
    check(resp.body == DONE, f"{why}: GET returned other bytes", resp)


def challenge(resp, error):
    """401 with a Bearer challenge whose error is `error` (a tuple: any of them; None: absent)."""
    status(resp, 401)
    value = header(resp, "WWW-Authenticate")
    check(value.lower().startswith("bearer"), f"WWW-Authenticate {value!r} is not a Bearer challenge", resp)
    m = re.search(r'(?:^|[\s,])error="([^"]*)"', value)
    got = m.group(1) if m else None
    wanted = error if isinstance(error, tuple) else (error,)
    check(got in wanted, f"WWW-Authenticate error is {got!r}, expected {' or '.join(map(str, wanted))}", resp)


# ---- no token -------------------------------------------------------------------------

@auth_case("options-no-token", CONTRACT,
           "OPTIONS (discovery, CORS preflights) needs no token: 204 with Tus-Version, with no "
           "Authorization and with a garbage one")
def options_no_token(t):
    for auth in (None, "Bearer x"):
        resp = status(t.c.request("OPTIONS", t.c.base, [("Authorization", auth)], tus=False), 204)
        header(resp, "Tus-Version")


@auth_case("missing-token-401", MUST,
           "RFC 6750 3 / RFC 9110 11.6.1: a request without credentials gets 401 and MUST carry "
           "WWW-Authenticate: Bearer (POST, final POST, HEAD, PATCH, DELETE, GET); nothing changes")
def missing_token(t):
    up, done = victims(t)
    anon = as_(t, None)
    part = partial(t, b"abc")
    challenge(anon.c.request("POST", t.c.base, [("Upload-Length", "5")]), ("invalid_request", None))
    for urls in ([part], [unknown_path(t)]):  # no existence oracle for the unauthenticated
        challenge(anon.c.request("POST", t.c.base, [("Upload-Concat", "final;" + " ".join(urls))]),
                  ("invalid_request", None))
    for method, path in [("HEAD", up), ("DELETE", up), ("GET", done), ("HEAD", unknown_path(t))]:
        challenge(anon.c.request(method, path, tus=method != "GET"), ("invalid_request", None))
    challenge(patch(anon, up, 10, b"x"), ("invalid_request", None))
    unchanged(t, up, done)
    expect_state(t, part, 3, 3)


@auth_case("missing-token-invalid-request", CONTRACT,
           'A missing token is told apart from a bad one: 401 with WWW-Authenticate: Bearer '
           'realm="partway", error="invalid_request"')
def missing_token_error(t):
    resp = as_(t, None).c.request("POST", t.c.base, [("Upload-Length", "5")])
    challenge(resp, "invalid_request")
    check('realm="partway"' in resp.h("WWW-Authenticate"), "the challenge lacks realm=\"partway\"", resp)


# ---- bad credentials ------------------------------------------------------------------

BAD = []


def bad(name, clause, value, error="invalid_token", severity=SHOULD):
    """A row: POST, HEAD and PATCH with Authorization `value(t)` -> 401 with `error`."""
    BAD.append((name, clause, value, error, severity))


def _tampered(t):
    head, _, rest = token(t).partition(".")
    _, _, sig = rest.partition(".")
    claims = b64(f'{{"sub":"{t.admin_subject or "admin"}","exp":{int(time.time()) + 3600}}}')
    return f"Bearer {head}.{claims.rstrip('=').replace('+', '-').replace('/', '_')}.{sig}"


RFC_BAD = "RFC 6750 3.1: a malformed or invalid token gets 401, error=\"invalid_token\""
bad("bearer-x", RFC_BAD + ": Bearer x", lambda t: "Bearer x")
bad("bearer-a-b-c", RFC_BAD + ": Bearer a.b.c", lambda t: "Bearer a.b.c")
bad("alg-none", RFC_BAD + ": an unsigned alg=none token with good claims",
    lambda t: "Bearer " + mint(t.secret, {"sub": t.subject, "exp": int(time.time()) + 3600},
                               {"alg": "none", "typ": "JWT"}))
bad("other-secret", RFC_BAD + ": a good token signed with another secret",
    lambda t: "Bearer " + mint(b"not the server's secret, but long enough", {"sub": t.subject,
                               "exp": int(time.time()) + 3600}))
bad("tampered", RFC_BAD + ": a token whose claims were swapped after signing", _tampered)
bad("missing-sub", "A token without sub is not valid: 401, error=\"invalid_token\"",
    lambda t: "Bearer " + token(t, sub=None), severity=CONTRACT)
bad("not-yet-valid", "A token whose nbf is an hour ahead is not valid: 401, error=\"invalid_token\"",
    lambda t: "Bearer " + token(t, nbf=int(time.time()) + 3600), severity=CONTRACT)
bad("two-headers", "Two Authorization headers (both good) are ambiguous: 401, error=\"invalid_token\"",
    lambda t: ["Bearer " + token(t)] * 2, severity=CONTRACT)
bad("basic-scheme", "RFC 6750 3.1: another scheme (Basic) is a request lacking authentication "
    "information: 401 with a Bearer challenge, no invalid_token (partway: as a missing token)",
    lambda t: "Basic " + b64("conformance:secret"), error=("invalid_request", None))


def _bad_case(value, error):
    def run(t):
        up, done = victims(t)
        v = value(t)
        auth = [("Authorization", x) for x in (v if isinstance(v, list) else [v])]
        challenge(t.c.request("POST", t.c.base, [*auth, ("Upload-Length", "5")]), error)
        challenge(t.c.request("HEAD", up, auth), error)
        challenge(patch(t, up, 10, b"x", auth), error)
        challenge(t.c.request("GET", done, auth, tus=False), error)
        unchanged(t, up, done)
    return run


for _name, _clause, _value, _error, _severity in BAD:
    auth_case("bad-" + _name, _severity, _clause)(_bad_case(_value, _error))


@auth_case("expired-token", CONTRACT,
           "A token expired 2 hours ago: POST, GET and DELETE need a token valid now -> 401 "
           "error=\"invalid_token\" (only HEAD/PATCH of an own unfinished upload get a grace)")
def expired_token(t):
    up, done = victims(t)
    late = as_(t, token(t, ttl=-7200))
    challenge(late.c.request("POST", t.c.base, [("Upload-Length", "5")]), "invalid_token")
    challenge(get(late, done), "invalid_token")
    challenge(late.c.request("DELETE", up), "invalid_token")
    challenge(late.c.request("DELETE", done), "invalid_token")
    unchanged(t, up, done)


# ---- another subject ------------------------------------------------------------------

def _other_request(method):
    def send(t, path):
        if method == "PATCH":
            return patch(t, path, 10, b"x")
        return t.c.request(method, path, tus=method != "GET")
    return send


def _other_case(method):
    send = _other_request(method)

    def run(t):
        up, done = victims(t)
        them = other(t)
        unknown = send(them, unknown_path(t))
        status(unknown, 404)
        for path in (up, done):
            resp = status(send(them, path), 404)
            check(resp.body == unknown.body, f"another subject's {method} got a body that differs from "
                  f"an unknown upload's ({unknown.body!r}): an existence oracle", resp)
            for name in ("Upload-Offset", "Upload-Length", "ETag", "Content-Range"):
                check(resp.h(name) is None, f"another subject's {method} learns {name}", resp)
        unchanged(t, up, done, f"another subject's {method} must not change the upload")
    return run


for _method in ("HEAD", "PATCH", "DELETE", "GET"):
    auth_case(f"other-subject-{_method.lower()}", CONTRACT,
              f"An upload answers only its owner: another subject's {_method} of it (unfinished or "
              f"finished) gets 404 with the same body as for an unknown upload; nothing changes")(
        _other_case(_method))


@auth_case("other-subject-concat", CONTRACT,
           "Another subject naming the owner's finished partial in Upload-Concat: final gets 404, as "
           "for an unknown upload; the owner's partial is unchanged and still usable")
def other_concat(t):
    mine = partial(t, b"owner's part")
    them = other(t)
    theirs = partial(them, b"their part")
    unknown = unknown_path(t)
    ref = status(final(them, [theirs, unknown], expect=None), 404)
    for urls in ([absolute(t, mine)], [theirs, mine]):
        resp = status(final(them, urls, expect=None), 404)
        check(resp.body.replace(mine.rsplit("/", 1)[1].encode(), b"ID")
              == ref.body.replace(unknown.rsplit("/", 1)[1].encode(), b"ID"),
              f"the body differs from the one for an unknown partial ({ref.body!r})", resp)
    expect_state(t, mine, 12, 12, "the owner's partial")
    resp = status(get(t, mine), 200)
    check(resp.body == b"owner's part", "the owner's partial now holds other bytes", resp)
    path, _ = final(t, [mine])
    check(status(get(t, path), 200).body == b"owner's part", "the owner's final has other bytes", t.c.log[-1])


# ---- limits carried by the token ------------------------------------------------------

@auth_case("limit-max-size", CONTRACT,
           "partway.max_size 100: POST Upload-Length 101 -> 413, Upload-Length 100 -> 201")
def limit_max_size(t):
    small = as_(t, token(t, partway={"max_size": 100}))
    status(small.c.request("POST", t.c.base, [("Upload-Length", "101")]), 413)
    create(small, 100)


@auth_case("limit-actions-read", CONTRACT,
           "partway.actions [\"read\"]: POST -> 403 and PATCH -> 403, nothing changes; HEAD and "
           "GET of the subject's own uploads still work")
def limit_actions_read(t):
    up, done = victims(t)
    reader = as_(t, token(t, partway={"actions": ["read"]}))
    status(reader.c.request("POST", t.c.base, [("Upload-Length", "5")]), 403)
    status(patch(reader, up, 10, b"x"), 403)
    expect_state(reader, up, 10, 100, "a read-only token's HEAD")
    check(status(get(reader, done), 200).body == DONE, "GET with a read-only token", reader.c.log[-1])
    unchanged(t, up, done)


@auth_case("limit-content-types", CONTRACT,
           "partway.content_types [\"image/*\"]: POST with filetype text/plain -> 403, without "
           "filetype -> 403, with filetype image/png -> 201")
def limit_content_types(t):
    images = as_(t, token(t, partway={"content_types": ["image/*"]}))
    for meta in (f"filetype {b64('text/plain')}", f"filename {b64('a.png')}"):
        status(images.c.request("POST", t.c.base, [("Upload-Length", "5"), ("Upload-Metadata", meta)]), 403)
    create(images, 5, metadata=f"filetype {b64('image/png')},filename {b64('a.png')}")


# ---- admin ----------------------------------------------------------------------------

@auth_case("admin-subject", CONTRACT,
           "A subject of --auth-admin-subjects acts on any upload: HEAD and GET of another "
           "subject's uploads work (needs --token-admin-subject)")
def admin_subject(t):
    if not t.admin_subject:
        raise Skip("needs --token-admin-subject (one of the server's --auth-admin-subjects)")
    up, done = victims(t)
    admin = as_(t, token(t, sub=t.admin_subject))
    expect_state(admin, up, 10, 100, "the admin's HEAD")
    expect_state(admin, done, len(DONE), len(DONE), "the admin's HEAD")
    check(status(get(admin, done), 200).body == DONE, "the admin's GET returned other bytes", admin.c.log[-1])
    unchanged(t, up, done)
