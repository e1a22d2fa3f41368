#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need
# (redis-server and chromium from Debian's packages, a pinned moto S3 server and
# pinned tuspy in a venv, tus-js-client, Uppy and playwright-core from npm),
# checks formatting and lints, then runs every test.
# The tests start their own redis-server and moto on ephemeral loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
env_dir=target/test-env
mkdir -p "$env_dir/bin"

export DEBIAN_FRONTEND=noninteractive
apt_updated=
apt_install() {
  echo "== installing $*"
  [ -n "$apt_updated" ] || apt-get update -qq
  apt_updated=1
  apt-get install -y -qq "$@" >/dev/null
}
command -v redis-server >/dev/null || apt_install redis-server
# The Uppy tests drive Debian's chromium (playwright-core cannot download a browser here).
[ -x /usr/bin/chromium ] || apt_install chromium
ln -sf "$(command -v redis-server)" "$env_dir/bin/redis-server"

moto_version=5.2.5  # 5.2.1 answers CompleteMultipartUpload with an XML root aws-sdk-s3 rejects
if [ "$("$env_dir/venv/bin/python" -c 'import moto; print(moto.__version__)' 2>/dev/null)" != "$moto_version" ]; then
  echo "== installing moto $moto_version"
  python3 -m venv "$env_dir/venv"
  "$env_dir/venv/bin/pip" install -q "moto[server]==$moto_version"
fi
ln -sf ../venv/bin/moto_server "$env_dir/bin/moto_server"

# tuspy and its dependencies, pinned; reinstalled when any installed version differs.
if ! "$env_dir/venv/bin/python" - tests/py/requirements.txt 2>/dev/null <<'EOF'
import importlib.metadata as m, sys
pins = [l.split("#")[0].strip() for l in open(sys.argv[1])]
sys.exit(any(m.version(n) != v for n, v in (p.split("==") for p in pins if p)))
EOF
then
  echo "== installing tuspy"
  "$env_dir/venv/bin/pip" install -q -r tests/py/requirements.txt
fi

js=tests/js/node_modules
if [ ! -d $js/tus-js-client ] || [ ! -d $js/uppy ] || [ ! -d $js/playwright-core ] \
   || [ tests/js/package-lock.json -nt $js ]; then
  echo "== installing tus-js-client, uppy, playwright-core"
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== cargo test"
set +e
cargo test --all-targets 2>&1 | tee "$env_dir/test.log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$env_dir/test.log"
exit "$status"
