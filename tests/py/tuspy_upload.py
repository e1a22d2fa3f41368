#!/usr/bin/env python3
"""End-to-end tus client for partway, driven by the real PyPI `tuspy` (tusclient).

The Rust test suite spawns this script with target/test-env/venv/bin/python and then
checks the stored object itself; this script only uploads and reports one line of JSON
on stdout.

Setup:  tests/run.sh (pip installs tests/py/requirements.txt into target/test-env/venv)
Usage:  tuspy_upload.py --endpoint URL --file PATH [--chunk-size BYTES] [--checksum]
                        [--resume] [--stop-at BYTES] [--store PATH] [--timeout S]

Plain mode uploads the file in --chunk-size PATCHes (default: one PATCH).
--checksum sets tuspy's upload_checksum, so every PATCH carries `Upload-Checksum: sha1
<base64>`; the script first checks that the server's OPTIONS offers checksum with sha1,
and checks afterwards that every PATCH carried the header.
--resume uploads until --stop-at bytes (default 40% of the file) with a first uploader
that stores its URL in a tuspy FileStorage (store_url), then builds a NEW TusClient,
FileStorage and uploader on the same store file: it finds the URL by the file's
fingerprint, asks the server for the offset (HEAD) and uploads the rest.
Success: {"url": "...", "size": N, "resumedFrom": null | <offset the second uploader
started from>}, exit 0.  Failure: message on stderr, exit 1.  Timeout: exit 2.
"""

import argparse
import json
import os
import signal
import socket
import sys
import tempfile

import requests
from tusclient import client as tus_client
from tusclient.storage.filestorage import FileStorage
from tusclient.uploader import uploader as tus_uploader


def fail(message, code=1):
    sys.stderr.write(f"tuspy_upload.py: {message}\n")
    sys.stderr.flush()
    os._exit(code)


class RecordingRequest(tus_uploader.TusRequest):
    """tuspy's PATCH request, recording what each one sent and got back."""

    log = []

    def perform(self):
        super().perform()
        RecordingRequest.log.append(
            {
                "offset": int(self._request_headers["upload-offset"]),
                "length": self._content_length,
                "checksum": self._request_headers.get("upload-checksum"),
                "status": self.status_code,
            }
        )


# Uploader._do_request builds its requests from this module-level name.
tus_uploader.TusRequest = RecordingRequest


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--chunk-size", type=int)
    parser.add_argument("--checksum", action="store_true")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--stop-at", type=int)
    parser.add_argument("--store")
    parser.add_argument("--timeout", type=int, default=120)
    args = parser.parse_args()
    if args.chunk_size is not None and args.chunk_size <= 0:
        fail("--chunk-size must be positive")
    return args


def check_checksum_offered(endpoint):
    res = requests.options(endpoint)
    extensions = [e.strip() for e in res.headers.get("Tus-Extension", "").split(",")]
    algorithms = [a.strip() for a in res.headers.get("Tus-Checksum-Algorithm", "").split(",")]
    if "checksum" not in extensions or "sha1" not in algorithms:
        fail(
            f"server does not offer checksum with sha1: OPTIONS {res.status_code}, "
            f"Tus-Extension {extensions}, Tus-Checksum-Algorithm {algorithms}"
        )


def make_uploader(args, storage=None):
    kwargs = {
        "file_path": args.file,
        "metadata": {
            "filename": os.path.basename(args.file),
            "filetype": "application/octet-stream",
        },
        "upload_checksum": args.checksum,
    }
    if args.chunk_size is not None:
        kwargs["chunk_size"] = args.chunk_size
    if storage is not None:
        kwargs.update(store_url=True, url_storage=storage)
    # A fresh client each time, as a new process would have.
    return tus_client.TusClient(args.endpoint).uploader(**kwargs)


def resume(args, size):
    if size < 2:
        fail("--resume needs a file of at least 2 bytes")
    stop_at = args.stop_at if args.stop_at is not None else max(1, size * 2 // 5)
    if not 0 < stop_at < size:
        fail(f"--stop-at must be between 1 and {size - 1}")
    tmp = None
    store = args.store
    if store is None:
        tmp = tempfile.TemporaryDirectory(prefix="partway-tuspy-")
        store = os.path.join(tmp.name, "urls.json")

    storage = FileStorage(store)
    first = make_uploader(args, storage)
    if first.url is not None:
        fail(f"the store already holds an upload for this file: {first.url}")
    first.upload(stop_at=stop_at)
    if first.offset != stop_at:
        fail(f"first uploader stopped at {first.offset}, not {stop_at}")
    first_url = first.url
    storage.close()
    patches_before = len(RecordingRequest.log)

    storage = FileStorage(store)
    second = make_uploader(args, storage)
    resumed_from = second.offset  # the HEAD Upload-Offset it found at construction
    if second.url != first_url:
        fail(f"second uploader found {second.url!r} in the store, not {first_url!r}")
    second.upload()
    storage.remove_item(second._get_fingerprint())
    storage.close()
    if tmp is not None:
        tmp.cleanup()

    resumed_patches = RecordingRequest.log[patches_before:]
    sys.stderr.write(
        f"tuspy_upload.py: first uploader stopped at {stop_at}; second started at "
        f"{resumed_from}; its PATCH offsets {[p['offset'] for p in resumed_patches]}\n"
    )
    if resumed_from == 0:
        fail("the second uploader started from offset 0 (a restart, not a resume)")
    if resumed_patches and resumed_patches[0]["offset"] != resumed_from:
        fail(f"the second uploader's first PATCH was at {resumed_patches[0]['offset']}")
    return second, resumed_from


def main():
    args = parse_args()
    # No request may hang forever: a socket timeout for each request, and an overall one.
    socket.setdefaulttimeout(60)
    signal.signal(signal.SIGALRM, lambda *_: fail(f"timed out after {args.timeout} s", 2))
    signal.alarm(args.timeout)

    size = os.path.getsize(args.file)
    if args.checksum:
        check_checksum_offered(args.endpoint)
    try:
        if args.resume:
            upload, resumed_from = resume(args, size)
        else:
            upload = make_uploader(args)
            upload.upload()
            resumed_from = None
    except Exception as err:  # tuspy's errors carry the status and the body
        detail = getattr(err, "response_content", None)
        fail(f"{type(err).__name__}: {err} (status {getattr(err, 'status_code', None)}, body {detail!r})")

    if upload.offset != size:
        fail(f"upload ended at offset {upload.offset}, the file has {size} bytes")
    patches = RecordingRequest.log
    if any(not 200 <= p["status"] < 300 for p in patches):
        fail(f"a PATCH failed: {patches}")
    if args.checksum:
        missing = [p for p in patches if not (p["checksum"] or "").startswith("sha1 ")]
        if missing:
            fail(f"PATCHes without an sha1 Upload-Checksum: {missing}")
    sys.stderr.write(
        f"tuspy_upload.py: {len(patches)} PATCHes, "
        f"{sum(1 for p in patches if p['checksum'])} with Upload-Checksum\n"
    )
    print(json.dumps({"url": upload.url, "size": size, "resumedFrom": resumed_from}), flush=True)


if __name__ == "__main__":
    main()
