#!/usr/bin/env python3
"""Role: entry point of partway's black-box tus 1.0.0 conformance suite, and
the resumable-upload draft's (cases_draft.py).

Runs the table of cases (cases_*.py) against a live server and reports one
line per case: PASS/FAIL/SKIP, id, severity, extension and the spec clause;
on a failure, the request and the response that broke the rule. Exits 1 if
any case fails (SHOULD and CONTRACT cases count too), 2 if the server cannot
be reached.

    python3 tests/conformance/tus_conformance.py --endpoint http://127.0.0.1:PORT/files/ \
        [--expire-seconds N] [--json] [--only ID_PREFIX] [--skip-unadvertised] [--trace] \
        [--token-secret-file FILE [--token-subject NAME] [--token-admin-subject NAME]]

Python 3.11 standard library only. The extensions partway promises (see
EXPECTED) are tested whether or not OPTIONS advertises them; with
--skip-unadvertised, cases of an unadvertised extension are skipped instead
(for use against other tus servers).

Against a server that requires bearer tokens, --token-secret-file (the file
its --auth-jwt-secret-file reads) makes every request carry an HS256 token
for --token-subject, valid for an hour, and enables the auth cases
(cases_auth.py), which SKIP without it.
"""

import sys

sys.dont_write_bytecode = True  # keep the source tree clean

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import cases_auth  # noqa: E402
import cases_bad  # noqa: E402
import cases_concat  # noqa: E402
import cases_core  # noqa: E402
import cases_creation  # noqa: E402
import cases_draft  # noqa: E402
import cases_ext  # noqa: E402
from tuslib import Case, CheckFailed, Client, Skip, check, mint, read_secret  # noqa: E402

EXPECTED = ["creation", "creation-with-upload", "creation-defer-length", "termination",
            "expiration", "checksum", "checksum-trailer", "concatenation"]
TABLE = (cases_core.CASES + cases_creation.CASES + cases_ext.CASES + cases_concat.CASES + cases_bad.CASES
         + cases_auth.CASES + cases_draft.CASES)
TOKEN_SECONDS = 3600


class Target:
    """What every case function gets: the client, OPTIONS facts and the options."""

    def __init__(self, args, options):
        self.args = args
        self.secret = read_secret(args.token_secret_file) if args.token_secret_file else None
        self.subject = args.token_subject
        self.admin_subject = args.token_admin_subject
        token = None
        if self.secret is not None:
            token = mint(self.secret, {"sub": self.subject, "exp": int(time.time()) + TOKEN_SECONDS})
        self.c = Client(args.endpoint, token=token)
        self.options = options
        ext = options.h("Tus-Extension") or ""
        self.extensions = {e.strip() for e in ext.split(",") if e.strip()}
        algos = options.h("Tus-Checksum-Algorithm") or ""
        self.algorithms = [a.strip() for a in algos.split(",") if a.strip()]
        size = options.h("Tus-Max-Size")
        self.max_size = int(size) if size and size.isdigit() else None
        self.expire_seconds = args.expire_seconds
        self.concat_finals = []  # (path, expected bytes) for the download group
        self.groups = set(EXPECTED) | self.extensions | {"core", "download", "bad-input"}
        if self.secret is not None:
            self.groups.add("auth")


def advertised_cases():
    """One row per promised extension: OPTIONS must list it."""
    rows = []
    for ext in EXPECTED:
        def fn(t, ext=ext):
            check(ext in t.extensions, f"Tus-Extension does not list {ext}", t.options)
        rows.append(Case(f"{ext}-advertised", ext, "CONTRACT",
                                    f"OPTIONS Tus-Extension lists {ext}", fn))
    return rows


def run_case(t, row):
    t.c.log = []
    started = time.time()
    try:
        row.fn(t)
        outcome, detail = "PASS", ""
    except Skip as e:
        outcome, detail = "SKIP", str(e)
    except CheckFailed as e:
        outcome = "FAIL"
        resp = e.resp if e.resp is not None else (t.c.log[-1] if t.c.log else None)
        detail = str(e) + ("\n" + resp.describe() if resp is not None else "")
    except Exception as e:  # a crash of the case or a broken connection is a failure too
        outcome = "FAIL"
        last = t.c.log[-1].describe() if t.c.log else "(no request completed)"
        detail = f"{type(e).__name__}: {e}\nlast exchange:\n{last}\n" + traceback.format_exc(limit=3)
    if t.args.trace:
        detail += "\n--- every exchange of this case ---\n" + "\n".join(r.describe() for r in t.c.log)
    return {"id": row.id, "ext": row.ext, "severity": row.severity, "clause": row.clause,
            "outcome": outcome, "detail": detail, "seconds": round(time.time() - started, 2)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--endpoint", required=True, help="collection URL, e.g. http://127.0.0.1:1080/files/")
    p.add_argument("--expire-seconds", type=float, default=None,
                   help="the server's --expire-after; enables the wait-for-expiry cases")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of lines")
    p.add_argument("--only", action="append", default=[], help="run only case ids with this prefix")
    p.add_argument("--skip-unadvertised", action="store_true",
                   help="skip the cases of extensions OPTIONS does not list")
    p.add_argument("--trace", action="store_true", help="print every exchange of every case")
    p.add_argument("--token-secret-file", default=None, metavar="FILE",
                   help="the server's --auth-jwt-secret-file: send HS256 bearer tokens, run the auth cases")
    p.add_argument("--token-subject", default="conformance", metavar="NAME",
                   help="sub of the suite's token (default: conformance)")
    p.add_argument("--token-admin-subject", default=None, metavar="NAME",
                   help="one of the server's --auth-admin-subjects; enables the admin case")
    args = p.parse_args()
    try:
        options = Client(args.endpoint).request("OPTIONS", Client(args.endpoint).base, tus=False)
    except OSError as e:
        print(f"cannot reach {args.endpoint}: {e}", file=sys.stderr)
        return 2
    try:
        t = Target(args, options)
    except OSError as e:
        print(f"cannot read --token-secret-file: {e}", file=sys.stderr)
        return 2
    table = advertised_cases() + TABLE
    if args.only:
        table = [r for r in table if any(r.id.startswith(o) for o in args.only)]
    ids = [r.id for r in table]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    results = []
    for row in table:
        known = row.ext in t.extensions or row.ext in ("core", "bad-input", "auth", "draft")
        if args.skip_unadvertised and not known:
            res = {"id": row.id, "ext": row.ext, "severity": row.severity, "clause": row.clause,
                   "outcome": "SKIP", "detail": f"{row.ext} not advertised", "seconds": 0}
        else:
            res = run_case(t, row)
        results.append(res)
        if not args.json:
            print(f"{res['outcome']:4} {res['id']} [{res['severity']}, {res['ext']}] {res['clause']}"
                  + (f"\n     {res['detail']}" if res["outcome"] == "SKIP" else ""), flush=True)
            if res["outcome"] == "FAIL" or (args.trace and res["detail"]):
                print("     " + res["detail"].replace("\n", "\n     "), flush=True)
    counts = {k: sum(r["outcome"] == k for r in results) for k in ("PASS", "FAIL", "SKIP")}
    failed_should = sum(r["outcome"] == "FAIL" and r["severity"] != "MUST" for r in results)
    summary = (f"{len(results)} cases: {counts['PASS']} passed, {counts['FAIL']} failed "
               f"({counts['FAIL'] - failed_should} MUST, {failed_should} SHOULD/CONTRACT), "
               f"{counts['SKIP']} skipped")
    if args.json:
        print(json.dumps({"endpoint": args.endpoint, "summary": counts, "results": results}, indent=1))
    else:
        print(summary)
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
