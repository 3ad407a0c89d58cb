"""Benchmark the template and the service it generates, each figure beside a baseline of the same run.

    python bench/run.py                # from the repository root, with .venv or any Python that has copier

It prints a table, then as its very last line:

    bench: copy_s=… copy_floor_ratio=… update_s=… startup_s=… health_rps_ratio=… runtime_mb=… \
        me_rps=… me_rps_ratio=… me_p99_ms=… me_cpu_us=… me_base_cpu_us=… \
        me_rps_async_ratio=… me_async_base_cpu_us=… login_rps=… login_rps_ratio=… login_p99_ms=… \
        ready_p99_under_login_ms=… ready_p99_idle_ms=…

What is measured, and against what (runs interleaved so a busy machine slows both sides alike):

- copy: `copier copy --trust --defaults` of this template with the required answers into a fresh
  folder, against the same command on a one-file template made here (copier's own floor);
- update: `copier update` of a generated service from one release to the next, two tags made here
  in a snapshot of the template;
- runtime venv: built like the image's builder stage (a venv of the answers' Python, then
  `pip install --require-hashes -r requirements.txt`); its size on disk and package count;
- startup: the Dockerfile's CMD, run with that venv first on PATH and the container's environment,
  until the first 200 from /health; against a bare FastAPI app with one route;
- /health throughput: wrk on 127.0.0.1 against the service and the bare app, same command.
- the request path, on PostgreSQL (BENCH_DATABASE_URL, or a `bench` role and database this script
  creates when it runs as root), the service migrated by its own `alembic upgrade head`:
  - `me_rps`: authenticated `GET /users/me` (wrk, the tokens of ME_USERS users in turn), against a minimal FastAPI app in
    bench/me_baseline.py that does the same work by hand (decode the JWT, one SELECT by username,
    same driver, pool and server); beside it each server's CPU time per request
    (`me_cpu_us`, `me_base_cpu_us`), which moves far less than requests/s when other work shares
    the machine. That app is the straightforward one (the SELECT in FastAPI's thread pool); the
    service reads on psycopg's asyncio pool, so beside it the same work by hand on that pool
    (bench/me_baseline_async.py: `me_rps_async_ratio`, `me_async_base_cpu_us`);
  - `login_rps`: `POST /auth/token` with a right password, against the rate at which this machine
    checks that password's Argon2id hash (the service's default parameters) with every core busy
    (bench/hash_floor.py: the floor a login cannot beat);
  - `ready_p99_under_login_ms`: p99 of `/ready`, asked as the kubelet asks (one request at a time,
    a timeout counting as the timeout) while logins saturate the CPU, against its p99 idle.
  The login rows raise the service's rate limits (RATE_LIMIT_* variables) far above the load, so
  that they measure the work of a login, not the 429 that protects it.

Everything lives in one temporary folder removed at the end, servers included. Servers bind
127.0.0.1 only (the CMD's `--host 0.0.0.0` is replaced), and wrk only ever targets 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import NamedTuple, NoReturn

REPO = Path(__file__).resolve().parent.parent
# The snapshot, release and interpreter helpers the tests use too.
sys.path.insert(0, str(REPO / "tests"))
from template_repo import (
    LOOPBACK,
    commit_all,
    find_python,
    free_port,
    git,
    on_loopback,
    pyenv_selection,
    release,
    snapshot_template,
)
from template_repo import container_command as _container_command

# Goals of issue 7, on a 2-core machine.
GOAL_COPY_FLOOR_RATIO = 2.0
GOAL_UPDATE_COPY_RATIO = 3.0
GOAL_STARTUP_S = 1.0
GOAL_HEALTH_RPS_RATIO = 0.8
GOAL_RUNTIME_MB = 80.0
# Issue 13: /ready answers within its probe timeout (5 s) under a login flood; aim under 100 ms.
GOAL_READY_P99_UNDER_LOGIN_MS = 100.0
# Issue 16: the service's authenticated read at least 1.1x the hand-written app.
GOAL_ME_RPS_RATIO = 1.1
# GET /users/me is read by this many users in turn, each with its own token: the service sends the
# reads that wait for a connection together in one SELECT, each name once (app/db/batching.py),
# and one token would flatter that. The same tokens for every server.
ME_USERS = 100
BENCH_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", f"postgresql+psycopg://bench:bench@{LOOPBACK}:5432/bench")

# The answers without a default, as a user gives them.
REQUIRED = {
    "project_name": "Orders API",
    "ecr_account_id": "123456789012",
    "gitlab_project_path": "shop/orders-api",
}

# The container's environment (Dockerfile ENV, the ConfigMap and Secrets). ENVIRONMENT is dev, not
# prod: prod refuses to start without verified TLS to RDS (DATABASE_SSL_ROOT_CERT), which the local
# PostgreSQL does not offer; dev runs the same request path with the same settings otherwise.
SERVICE_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "ENVIRONMENT": "dev",
    "LOG_LEVEL": "INFO",
    "SECRET_KEY": "bench-" + "0123456789abcdef" * 3,
    "DATABASE_URL": BENCH_DATABASE_URL,
    # Set for both servers, so the hand-written app checks the same claims as the service.
    "JWT_ISSUER": "orders-api/auth",
    "JWT_AUDIENCE": "orders-api",
    # The login rows measure a login's work; the limits that answer 429 are raised out of the way.
    "RATE_LIMIT_LOGIN_PER_CLIENT": "1000000/minute",
    "RATE_LIMIT_LOGIN_FAILURES_PER_CLIENT_AND_USERNAME": "1000000/minute",
    "RATE_LIMIT_LOGIN_FAILURES_PER_USERNAME": "1000000/minute",
    "RATE_LIMIT_SIGNUP_PER_CLIENT": "1000000/minute",
}

# The service's own defaults, read from its settings: its Argon2id parameters (for the hashing
# floor), then its read pool's size (for the asyncio baseline's pool).
SERVICE_DEFAULTS = (
    "from app.core.config import Settings\n"
    "fields = Settings.model_fields\n"
    "names = ('password_hash_memory_kib', 'password_hash_time_cost', 'password_hash_parallelism', "
    "'database_read_pool_size')\n"
    "print(*(fields[name].default for name in names))"
)

BARE_APP = """\
from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
"""

# Every wait is bounded.
COMMAND_TIMEOUT_S = 300
PIP_TIMEOUT_S = 900
SERVER_START_TIMEOUT_S = 30
SERVER_STOP_TIMEOUT_S = 10


# --- small helpers -------------------------------------------------------------------------


def fail(message: str) -> NoReturn:
    print(f"bench: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def run(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = COMMAND_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        fail(f"`{' '.join(map(str, cmd))}` exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def timed(
    cmd: list[str], into: list[float], cpu: list[float], cwd: Path | None = None, env: dict[str, str] | None = None
) -> None:
    """Append the command's wall time to `into` and its CPU time (user + sys, its children included) to `cpu`.

    The CPU time hardly moves when other work shares the machine: it tells noise from a real change.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    run(cmd, cwd=cwd, env=env)
    into.append(time.perf_counter() - started)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)


def rounds(count: int, *jobs: Callable[[], None]) -> None:
    """Run the jobs `count` times, rotating their order each round so none always goes first."""
    for i in range(count):
        shift = i % len(jobs)
        for job in jobs[shift:] + jobs[:shift]:
            job()


def median(values: list[float]) -> float:
    return statistics.median(values)


def size_on_disk(root: Path) -> int:
    """Bytes allocated under root, like `du`: blocks, each hard-linked inode once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


# The releases and the service are git repositories: a git identity, and pyenv's shims selected.
os.environ.update(pyenv_selection())
for _key, _value in {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}.items():
    os.environ.setdefault(_key, _value)
BASE_ENV = dict(os.environ)


def python_for(version: str) -> str:
    found = find_python(version)
    if not found:
        fail(f"python{version} (the generated service's Python) is not installed")
    return str(found)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
        found = shutil.which("wrk")
        if found:
            return found
    fail("wrk is not installed: run `sudo apt-get install -y wrk` (Debian) and try again")
    raise AssertionError


def copier_cmd() -> list[str]:
    return [sys.executable, "-m", "copier"]


# --- the template: a snapshot with two releases, and the floor template --------------------


def next_release(template: Path) -> None:
    """0.2.0: what a small release does, a few lines changed in two generated files."""
    readme = template / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + "\n## Release notes\n\nSee the template's CHANGELOG.\n")
    makefile = template / "template" / "Makefile.jinja"
    makefile.write_text(makefile.read_text() + "\n# Generated by the template; `copier update` brings new releases.\n")
    release(template, "0.2.0")


def floor_template(dst: Path) -> Path:
    """One file, no questions: what any `copier copy` costs, whatever the template."""
    dst.mkdir(parents=True)
    (dst / "README.md.jinja").write_text("# {{ project_name }}\n")
    git(dst, "init", "-q", "-b", "main")
    release(dst, "0.1.0")
    return dst


def copy_args(src: Path, dst: Path, *extra: str) -> list[str]:
    data = [arg for key, value in REQUIRED.items() for arg in ("--data", f"{key}={value}")]
    return [*copier_cmd(), "copy", "--trust", "--defaults", "--quiet", *extra, *data, str(src), str(dst)]


def build_runtime_venv(python: str, service: Path, venv: Path) -> Path:
    """The virtualenv the image's runtime stage carries, built as its builder stage builds it.

    Follows the two ways a Dockerfile keeps pip out of that venv: `python -m venv --without-pip`
    (then the builder's own pip installs into it) or `pip uninstall -y pip` once the lock is in.
    """
    stages = re.split(r"(?m)^FROM\s", (service / "Dockerfile").read_text())[1:]
    builder = "\n".join(stages[:-1])  # every stage before the runtime one
    without_pip = bool(re.search(r"-m venv\b[^\n]*--without-pip", builder))
    uninstall_pip = bool(re.search(r"pip uninstall (-y|--yes) pip\b", builder))
    run([python, "-m", "venv", *(["--without-pip"] if without_pip else []), str(venv)], env=BASE_ENV)
    venv_python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "--python", venv_python] if without_pip else [venv_python, "-m", "pip"]
    env = {**BASE_ENV, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    run(
        [*pip, "install", "-q", "--require-hashes", "-r", str(service / "requirements.txt")],
        env=env,
        timeout=PIP_TIMEOUT_S,
    )
    if uninstall_pip:
        run([venv_python, "-m", "pip", "uninstall", "-q", "-y", "pip"], env=env)
    return venv


# --- servers ---------------------------------------------------------------------------------


def container_command(dockerfile: Path) -> list[str]:
    try:
        return _container_command(dockerfile)
    except ValueError as error:
        fail(str(error))


_SERVERS: list[subprocess.Popen[bytes]] = []


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (it was started in a session of its own), then SIGKILL."""
    if proc in _SERVERS:
        _SERVERS.remove(proc)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(SERVER_STOP_TIMEOUT_S)


def health_status(port: int, path: str = "/health") -> int | None:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=1)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


@contextmanager
def server(
    cmd: list[str],
    cwd: Path,
    venv: Path,
    log: Path,
    health: str = "/health",
    app_env: dict[str, str] | None = None,
) -> Iterator[tuple[int, float]]:
    """Start a server, yield (port, seconds until the first 200 from `health`), stop it.

    `app_env`: the application's environment, SERVICE_ENV unless given.
    """
    port = free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(cwd),
        "LANG": "C.UTF-8",
        **(SERVICE_ENV if app_env is None else app_env),
    }
    argv = on_loopback(cmd, port)
    argv[0] = shutil.which(argv[0], path=env["PATH"]) or argv[0]
    with log.open("ab") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    _SERVERS.append(proc)
    try:
        while health_status(port, health) != 200:
            if proc.poll() is not None:
                fail(
                    f"`{' '.join(argv)}` exited {proc.returncode} before {health} answered:\n{log.read_text()[-3000:]}"
                )
            if time.perf_counter() - started > SERVER_START_TIMEOUT_S:
                fail(f"{health} did not answer 200 within {SERVER_START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.005)
        yield port, time.perf_counter() - started
    finally:
        stop(proc)


def wrk_rps(wrk: str, port: int, seconds: int, connections: int) -> float:
    url = f"http://{LOOPBACK}:{port}/health"
    args = [wrk, "-t1", f"-c{connections}", "--timeout", "2s"]
    subprocess.run([*args, "-d1s", url], capture_output=True, timeout=30, check=False)  # warm-up
    proc = run([*args, f"-d{seconds}s", url], timeout=seconds + 30)
    match = re.search(r"Requests/sec:\s+([\d.]+)", proc.stdout)
    if not match or "Non-2xx" in proc.stdout:
        fail(f"wrk gave no clean result:\n{proc.stdout}")
    return float(match.group(1))


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


class WrkRun(NamedTuple):
    """What one wrk run with its latency distribution printed."""

    rps: float  # every answer, 2xx or not
    p99_ms: float
    requests: int
    non_2xx: int  # wrk counts 3xx with 2xx
    seconds: float


def wrk_run(
    wrk: str,
    url: str,
    seconds: int,
    connections: int,
    *extra: str,
    allow_non2xx: bool = False,
    timeout_s: int = 10,
) -> WrkRun:
    proc = run(
        [wrk, "-t1", f"-c{connections}", "--timeout", f"{timeout_s}s", "--latency", *extra, f"-d{seconds}s", url],
        timeout=seconds + timeout_s + 60,
    )
    out = proc.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\b", out, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in ([\d.]+)(ms|s|m)\b", out, re.MULTILINE)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if not rps or not p99 or not total or (non_2xx and not allow_non2xx) or "Socket errors" in out:
        fail(f"wrk gave no clean result for {url}:\n{out}")
    return WrkRun(
        rps=float(rps.group(1)),
        p99_ms=float(p99.group(1)) * _UNITS_MS[p99.group(2)],
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        seconds=float(total.group(2)) * _UNITS_MS[total.group(3)] / 1000,
    )


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (its threads included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def probe_p99_ms(port: int, path: str, seconds: float, timeout_s: float = 10.0) -> float:
    """p99 of `path`, asked as the kubelet asks a probe: one request at a time, a new connection each.

    A request that times out counts as the timeout, so a starved endpoint cannot look fast.
    """
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout_s)
        started = time.perf_counter()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                fail(f"{path} answered {response.status}")
            latencies.append(time.perf_counter() - started)
        except TimeoutError:
            latencies.append(timeout_s)
        finally:
            conn.close()
        time.sleep(0.05)
    latencies.sort()
    return latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000


def probe_p99_under_logins_ms(
    wrk: str, login_url: str, login_lua: Path, clients: int, port: int, probe_path: str, seconds: int
) -> float:
    """`probe_p99_ms` of `probe_path` while `clients` wrk connections log in without pause."""
    flood_cmd = [wrk, "-t1", f"-c{clients}", "--timeout", "30s", "-s", str(login_lua), f"-d{seconds + 4}s",
                 login_url]  # fmt: skip
    flood = subprocess.Popen(flood_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)  # the logins are running: every core hashes
        return probe_p99_ms(port, probe_path, seconds)
    finally:
        flood.wait(timeout=seconds + 60)


def post(port: int, path: str, body: str, content_type: str = "application/json") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    try:
        conn.request("POST", path, body=body.encode(), headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


BENCH_DATABASE_SQL = r"""
SELECT 'CREATE ROLE bench LOGIN PASSWORD ''bench'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench')\gexec
SELECT 'CREATE DATABASE bench OWNER bench'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'bench')\gexec
"""


def ensure_bench_database() -> None:
    """The default BENCH_DATABASE_URL's role and database, made as bootstrap.sh makes the tests' ones."""
    if "BENCH_DATABASE_URL" in os.environ:
        return
    if os.geteuid() != 0:
        fail("set BENCH_DATABASE_URL to a PostgreSQL database the benchmark may use (or run as root)")
    subprocess.run(["pg_ctlcluster", "15", "main", "start"], capture_output=True, check=False)
    for _ in range(30):
        if subprocess.run(["pg_isready", "-q", "-h", LOOPBACK], check=False).returncode == 0:
            break
        time.sleep(1)
    proc = as_postgres(BENCH_DATABASE_SQL)
    if proc.returncode != 0:
        fail(f"could not create the bench database: {proc.stderr}")


def as_postgres(sql: str) -> subprocess.CompletedProcess[str]:
    """Run SQL with psql as the postgres superuser (root only)."""
    return subprocess.run(["su", "postgres", "-c", "psql -v ON_ERROR_STOP=1 -q"], input=sql, text=True,
                          capture_output=True, check=False)  # fmt: skip


def service_tokens(port: int, user: dict[str, str]) -> list[str]:
    """Sign up `user` and ME_USERS - 1 more (its name with -1, -2...) on the service at `port`, and
    log each in: their access tokens, `user`'s first."""
    tokens = []
    for number in range(ME_USERS):
        reader = user if number == 0 else {**user, "username": f"{user['username']}-{number}"}
        status, body = post(port, "/users", json.dumps(reader))
        if status != 201:
            fail(f"POST /users answered {status}: {body[:300]!r}")
        status, body = post(port, "/auth/token", json.dumps(reader))
        if status != 200:
            fail(f"POST /auth/token answered {status}: {body[:300]!r}")
        tokens.append(json.loads(body)["access_token"])
    return tokens


def lua_bearers(path: Path, tokens: list[str]) -> Path:
    """A wrk script that sends each request with the next of `tokens` as its bearer, in turn."""
    listed = ", ".join(json.dumps(token) for token in tokens)
    path.write_text(
        f"local tokens = {{{listed}}}\nlocal next_one = 0\n"
        "request = function()\n"
        "  next_one = next_one % #tokens + 1\n"
        '  return wrk.format(nil, nil, {["Authorization"] = "Bearer " .. tokens[next_one]})\n'
        "end\n"
    )
    return path


def lua_post(path: Path, body: str, content_type: str = "application/json") -> Path:
    """A wrk script that POSTs one body."""
    path.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "{content_type}"\n'
    )
    return path


# --- the benchmark ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="copies, updates and starts of each kind (at least 5)")
    parser.add_argument("--rps-rounds", type=int, default=5, help="wrk runs against each server")
    parser.add_argument("--wrk-seconds", type=int, default=4, help="duration of one wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--request-rounds", type=int, default=5, help="rounds of the request-path rows")
    args = parser.parse_args()
    runs = max(5, min(args.runs, 50))
    rps_rounds = max(1, min(args.rps_rounds, 10))
    wrk_seconds = max(1, min(args.wrk_seconds, 60))

    wrk = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        report(work, wrk, runs, rps_rounds, wrk_seconds, args.connections, max(1, min(args.request_rounds, 10)))
    finally:
        while _SERVERS:
            stop(_SERVERS[-1])
        shutil.rmtree(work, ignore_errors=True)


def step(text: str) -> None:
    print(f"… {text}", file=sys.stderr, flush=True)


def report(
    work: Path, wrk: str, runs: int, rps_rounds: int, wrk_seconds: int, connections: int, request_rounds: int
) -> None:
    step("snapshot of the template, releases 0.1.0 and 0.2.0, floor template")
    template = snapshot_template(work / "template")
    release(template, "0.1.0")
    floor = floor_template(work / "floor")
    service = work / "service"
    run(copy_args(template, service), env=BASE_ENV)
    commit_all(service, "generated at 0.1.0")
    next_release(template)

    step(f"copy, floor copy and update, {runs} rounds interleaved")
    copy_s: list[float] = []
    floor_s: list[float] = []
    update_s: list[float] = []
    copy_cpu: list[float] = []
    floor_cpu: list[float] = []
    update_cpu: list[float] = []
    scratch = work / "scratch"
    scratch.mkdir()
    counter = iter(range(10**6))

    def copy() -> None:
        dst = scratch / f"copy-{next(counter)}"
        timed(copy_args(template, dst), copy_s, copy_cpu, env=BASE_ENV)
        shutil.rmtree(dst)

    def floor_copy() -> None:
        dst = scratch / f"floor-{next(counter)}"
        timed(copy_args(floor, dst), floor_s, floor_cpu, env=BASE_ENV)
        shutil.rmtree(dst)

    def update() -> None:
        dst = scratch / f"update-{next(counter)}"
        shutil.copytree(service, dst, symlinks=True)
        timed(
            [*copier_cmd(), "update", "--trust", "--defaults", "--quiet"], update_s, update_cpu, cwd=dst, env=BASE_ENV
        )
        if "## Release notes" not in (dst / "README.md").read_text():
            fail("copier update did not bring release 0.2.0")
        shutil.rmtree(dst)

    rounds(runs, copy, floor_copy, update)

    answers = (service / ".copier-answers.yml").read_text()
    version = re.search(r"^python_version:\s*['\"]?([\d.]+)", answers, re.MULTILINE)
    python = python_for(version.group(1) if version else "3.12")
    step(f"runtime venv: {Path(python).name} -m venv, pip install --require-hashes -r requirements.txt")
    venv = build_runtime_venv(python, service, work / "venv")
    site = next((venv / "lib").glob("python*/site-packages"))
    runtime_bytes = size_on_disk(venv)
    packages = sorted(site.glob("*.dist-info"))
    by_size = sorted(
        (
            (size_on_disk(site / top) if (site / top).exists() else 0, d.name.split("-")[0])
            for d in packages
            for top in _tops(d)
        ),
        reverse=True,
    )
    largest = ", ".join(f"{name} {b / 1e6:.1f}" for b, name in _merge(by_size)[:4])
    # The bare app gets the same venv (FastAPI and uvicorn are in it) and the same command.
    bare = work / "bare"
    (bare / "app").mkdir(parents=True)
    (bare / "app" / "__init__.py").write_text("")
    (bare / "app" / "main.py").write_text(BARE_APP)
    cmd = container_command(service / "Dockerfile")
    # Only the files the runtime stage copies, without bytecode: a cold container.
    runtime_app = work / "app"
    runtime_app.mkdir()
    for name in ("app", "alembic", "alembic.ini"):
        source = service / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, runtime_app / name)
    logs = work / "logs"
    logs.mkdir()

    step(f"startup: `{' '.join(cmd)}` until the first 200 from /health, {runs} rounds against the bare app")
    start_s: list[float] = []
    bare_start_s: list[float] = []

    def start(cwd: Path, into: list[float]) -> Callable[[], None]:
        def job() -> None:
            with server(cmd, cwd, venv, logs / f"{cwd.name}.log") as (_, seconds):
                into.append(seconds)

        return job

    rounds(runs, start(runtime_app, start_s), start(bare, bare_start_s))

    rps_cmd = [*cmd, "--no-access-log"]
    step(f"/health: wrk -t1 -c{connections} -d{wrk_seconds}s on {LOOPBACK}, {rps_rounds} rounds against the bare app")
    rps: list[float] = []
    bare_rps: list[float] = []

    def load(cwd: Path, into: list[float]) -> Callable[[], None]:
        def job() -> None:
            with server(rps_cmd, cwd, venv, logs / f"{cwd.name}-rps.log") as (port, _):
                into.append(wrk_rps(wrk, port, wrk_seconds, connections))

        return job

    rounds(rps_rounds, load(runtime_app, rps), load(bare, bare_rps))

    path = request_path(work, wrk, cmd, runtime_app, venv, logs, request_rounds, wrk_seconds, connections)

    copy_m, floor_m, update_m = median(copy_s), median(floor_s), median(update_s)
    start_m, bare_start_m = median(start_s), median(bare_start_s)
    rps_m, bare_rps_m = median(rps), median(bare_rps)
    copy_ratio = copy_m / floor_m
    rps_ratio = rps_m / bare_rps_m
    runtime_mb = runtime_bytes / 1e6

    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    rows = [
        ("measure", "value", "baseline (same run)", "ratio", "goal", ""),
        (
            "copier copy",
            f"{copy_m:.2f} s",
            f"one-file template {floor_m:.2f} s",
            f"{copy_ratio:.2f}x",
            f"<= {GOAL_COPY_FLOOR_RATIO}x floor",
            mark(copy_ratio <= GOAL_COPY_FLOOR_RATIO),
        ),
        (
            "copier update 0.1.0 -> 0.2.0",
            f"{update_m:.2f} s",
            f"copy {copy_m:.2f} s",
            f"{update_m / copy_m:.2f}x",
            f"<= {GOAL_UPDATE_COPY_RATIO}x copy",
            mark(update_m / copy_m <= GOAL_UPDATE_COPY_RATIO),
        ),
        (
            "cold start to first /health 200",
            f"{start_m:.3f} s",
            f"bare app {bare_start_m:.3f} s",
            f"{start_m / bare_start_m:.2f}x",
            f"< {GOAL_STARTUP_S} s",
            mark(start_m < GOAL_STARTUP_S),
        ),
        (
            "/health requests/s",
            f"{rps_m:.0f}",
            f"bare app {bare_rps_m:.0f}",
            f"{rps_ratio:.2f}x",
            f">= {GOAL_HEALTH_RPS_RATIO}x bare",
            mark(rps_ratio >= GOAL_HEALTH_RPS_RATIO),
        ),
        (
            "runtime venv on disk",
            f"{runtime_mb:.1f} MB",
            f"{len(packages)} packages; largest MB: {largest}",
            "",
            f"< {GOAL_RUNTIME_MB:.0f} MB",
            mark(runtime_mb < GOAL_RUNTIME_MB),
        ),
        (
            "GET /users/me requests/s (PostgreSQL)",
            f"{path['me_rps']:.0f} (p99 {path['me_p99_ms']:.0f} ms)",
            (
                f"hand-written app {path['me_base_rps']:.0f} (p99 {path['me_base_p99_ms']:.0f} ms); "
                f"CPU/request {path['me_cpu_us']:.0f} vs {path['me_base_cpu_us']:.0f} us"
            ),
            f"{path['me_rps_ratio']:.2f}x",
            f">= {GOAL_ME_RPS_RATIO}x hand-written",
            mark(path["me_rps_ratio"] >= GOAL_ME_RPS_RATIO),
        ),
        (
            "  the same, against asyncio by hand",
            f"{path['me_rps']:.0f}",
            (
                f"hand-written asyncio app {path['me_async_base_rps']:.0f} "
                f"(p99 {path['me_async_base_p99_ms']:.0f} ms); "
                f"CPU/request {path['me_cpu_us']:.0f} vs {path['me_async_base_cpu_us']:.0f} us"
            ),
            f"{path['me_rps_async_ratio']:.2f}x",
            # The service reads on this pool: the same driver and pool is this baseline (issue 16).
            f">= {GOAL_ME_RPS_RATIO}x, same pool",
            mark(path["me_rps_async_ratio"] >= GOAL_ME_RPS_RATIO),
        ),
        (
            "POST /auth/token logins/s",
            f"{path['login_rps']:.1f} (p99 {path['login_p99_ms']:.0f} ms)",
            f"Argon2id checks/s, all cores {path['hash_rps']:.1f}",
            f"{path['login_rps_ratio']:.2f}x",
            "",
            "",
        ),
        (
            "/ready p99 while logins saturate",
            f"{path['ready_p99_under_login_ms']:.0f} ms",
            f"idle {path['ready_p99_idle_ms']:.1f} ms",
            f"{path['ready_p99_under_login_ms'] / path['ready_p99_idle_ms']:.0f}x",
            f"< {GOAL_READY_P99_UNDER_LOGIN_MS:.0f} ms",
            mark(path["ready_p99_under_login_ms"] < GOAL_READY_P99_UNDER_LOGIN_MS),
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print()
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * width for width in widths))
    print()
    print(f"runs: {runs} copies/updates/starts each, {rps_rounds} x {wrk_seconds} s of wrk each; medians, interleaved")
    print(f"copy     {' '.join(f'{v:.2f}' for v in copy_s)}   floor {' '.join(f'{v:.2f}' for v in floor_s)}")
    print(f"update   {' '.join(f'{v:.2f}' for v in update_s)}")
    copy_c, floor_c, update_c = median(copy_cpu), median(floor_cpu), median(update_cpu)
    print(
        f"cpu s    copy {copy_c:.2f}, floor {floor_c:.2f}, update {update_c:.2f}: "
        f"copy/floor {copy_c / floor_c:.2f}x, update/copy {update_c / copy_c:.2f}x (user + sys, medians)"
    )
    print(f"startup  {' '.join(f'{v:.3f}' for v in start_s)}   bare {' '.join(f'{v:.3f}' for v in bare_start_s)}")
    print(f"rps      {' '.join(f'{v:.0f}' for v in rps)}   bare {' '.join(f'{v:.0f}' for v in bare_rps)}")
    print(f"server   {' '.join(rps_cmd)} (host and port replaced by {LOOPBACK}:<free port>)")
    print(
        f"bench: copy_s={copy_m:.3f} copy_floor_ratio={copy_ratio:.2f} update_s={update_m:.3f} "
        f"startup_s={start_m:.3f} health_rps_ratio={rps_ratio:.2f} runtime_mb={runtime_mb:.1f} "
        f"me_rps={path['me_rps']:.0f} me_rps_ratio={path['me_rps_ratio']:.2f} me_p99_ms={path['me_p99_ms']:.0f} "
        f"me_cpu_us={path['me_cpu_us']:.0f} me_base_cpu_us={path['me_base_cpu_us']:.0f} "
        f"me_rps_async_ratio={path['me_rps_async_ratio']:.2f} me_async_base_cpu_us={path['me_async_base_cpu_us']:.0f} "
        f"login_rps={path['login_rps']:.1f} login_rps_ratio={path['login_rps_ratio']:.2f} "
        f"login_p99_ms={path['login_p99_ms']:.0f} "
        f"ready_p99_under_login_ms={path['ready_p99_under_login_ms']:.0f} "
        f"ready_p99_idle_ms={path['ready_p99_idle_ms']:.1f}"
    )


def request_path(
    work: Path,
    wrk: str,
    cmd: list[str],
    runtime_app: Path,
    venv: Path,
    logs: Path,
    request_rounds: int,
    wrk_seconds: int,
    connections: int,
) -> dict[str, float]:
    """The rows of issues 13 and 16: an authenticated read, logins, and /ready under a login flood."""
    step("request path: PostgreSQL, the service migrated by its own `alembic upgrade head`")
    ensure_bench_database()
    env = {"PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8", **SERVICE_ENV}
    run([str(venv / "bin" / "alembic"), "upgrade", "head"], cwd=runtime_app, env=env)
    baseline = work / "me-baseline"
    baseline.mkdir()
    shutil.copy2(REPO / "bench" / "me_baseline.py", baseline / "me_baseline.py")
    shutil.copy2(REPO / "bench" / "me_baseline_async.py", baseline / "me_baseline_async.py")
    shutil.copy2(REPO / "bench" / "me_token.py", baseline / "me_token.py")
    at = cmd.index("app.main:app")
    *hash_defaults, read_pool = run([str(venv / "bin" / "python"), "-c", SERVICE_DEFAULTS], cwd=runtime_app,
                                    env=env).stdout.split()  # fmt: skip
    # The asyncio baseline's pool is the service's read pool: its default size, for both servers.
    me_env = {**SERVICE_ENV, "DATABASE_READ_POOL_SIZE": read_pool}
    baseline_cmd = [*cmd[:at], "me_baseline:app", *cmd[at + 1 :]]
    async_baseline_cmd = [*cmd[:at], "me_baseline_async:app", *cmd[at + 1 :]]
    user = {"username": f"bench-{os.getpid()}-{int(time.time())}", "password": "bench-password-0123456789"}
    scripts = work / "wrk"
    scripts.mkdir()
    login_lua = lua_post(scripts / "login.lua", json.dumps(user))
    figures: dict[str, list[float]] = {
        k: [] for k in ("me", "me_p99", "me_cpu", "base", "base_p99", "base_cpu", "abase", "abase_p99", "abase_cpu")
    }

    with server(cmd, runtime_app, venv, logs / "request-path.log") as (port, _):
        tokens = service_tokens(port, user)
    auth = ["-s", str(lua_bearers(scripts / "me.lua", tokens))]

    step(f"GET /users/me: wrk -c{connections} -d{wrk_seconds}s, {request_rounds} rounds against the hand-written app")

    def me(cwd: Path, argv: list[str], name: str) -> Callable[[], None]:
        def job() -> None:
            with server(argv, cwd, venv, logs / f"{cwd.name}-{name}.log", app_env=me_env) as (port, _):
                pid = _SERVERS[-1].pid
                url = f"http://{LOOPBACK}:{port}/users/me"
                wrk_run(wrk, url, 1, connections, *auth)  # warm-up: the pool fills, the code paths load
                cpu_before = process_cpu_s(pid)
                measured = wrk_run(wrk, url, wrk_seconds, connections, *auth)
                figures[name].append(measured.rps)
                figures[f"{name}_p99"].append(measured.p99_ms)
                figures[f"{name}_cpu"].append((process_cpu_s(pid) - cpu_before) / measured.requests * 1e6)

        return job

    rounds(
        request_rounds,
        me(runtime_app, cmd, "me"),
        me(baseline, baseline_cmd, "base"),
        me(baseline, async_baseline_cmd, "abase"),
    )
    # Round by round, so that a noisy round shows where the medians come from.
    for name, label in (("me", "service"), ("abase", "asyncio by hand"), ("base", "by hand")):
        rps, cpu = figures[name], figures[f"{name}_cpu"]
        step(f"  {label:15} requests/s {' '.join(f'{v:.0f}' for v in rps)}; CPU us {' '.join(f'{v:.0f}' for v in cpu)}")

    login_seconds = max(wrk_seconds, 6)
    step(f"logins: wrk -c16 -d{login_seconds}s; /ready probed idle, then under wrk -c80 logins; Argon2id floor")
    floor = [str(venv / "bin" / "python"), str(REPO / "bench" / "hash_floor.py"), *hash_defaults, str(login_seconds)]
    hash_rps = float(run(floor, env=env).stdout)
    with server(cmd, runtime_app, venv, logs / "logins.log") as (port, _):
        base = f"http://{LOOPBACK}:{port}"
        ready_idle = probe_p99_ms(port, "/ready", login_seconds)
        # 16 clients: within the hashing queue's capacity on two cores (2 workers x 9); past it the
        # service answers 503 at once (RUN-2), which the flood below shows.
        login = wrk_run(wrk, f"{base}/auth/token", login_seconds, 16, "-s", str(login_lua))
        ready_loaded = probe_p99_under_logins_ms(
            wrk, f"{base}/auth/token", login_lua, 80, port, "/ready", login_seconds
        )

    me_rps, base_rps = median(figures["me"]), median(figures["base"])
    return {
        "me_rps": me_rps,
        "me_p99_ms": median(figures["me_p99"]),
        "me_base_rps": base_rps,
        "me_base_p99_ms": median(figures["base_p99"]),
        "me_cpu_us": median(figures["me_cpu"]),
        "me_base_cpu_us": median(figures["base_cpu"]),
        "me_rps_ratio": me_rps / base_rps,
        "me_async_base_rps": median(figures["abase"]),
        "me_async_base_p99_ms": median(figures["abase_p99"]),
        "me_async_base_cpu_us": median(figures["abase_cpu"]),
        "me_rps_async_ratio": me_rps / median(figures["abase"]),
        "login_rps": login.rps,
        "login_p99_ms": login.p99_ms,
        "hash_rps": hash_rps,
        "login_rps_ratio": login.rps / hash_rps,
        "ready_p99_idle_ms": ready_idle,
        "ready_p99_under_login_ms": ready_loaded,
    }


def _tops(dist_info: Path) -> list[str]:
    """Top-level names a distribution installed (its RECORD), for the size breakdown."""
    record = dist_info / "RECORD"
    tops = {line.split(",")[0].split("/")[0] for line in record.read_text().splitlines()} if record.exists() else set()
    return sorted(t for t in tops if t and not t.endswith(".dist-info") and t not in {"..", "__pycache__"})


def _merge(sizes: list[tuple[int, str]]) -> list[tuple[int, str]]:
    totals: dict[str, int] = {}
    for size, name in sizes:
        totals[name] = totals.get(name, 0) + size
    return sorted(((b, n) for n, b in totals.items()), reverse=True)


def _interrupted(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    try:
        import copier  # noqa: F401
    except ImportError:
        venv_python = REPO / ".venv" / "bin" / "python"
        if venv_python.exists() and Path(sys.executable) != venv_python:
            os.execv(str(venv_python), [str(venv_python), *sys.argv])
        fail("copier is not installed: python3 -m venv .venv && .venv/bin/pip install -r requirements-dev.txt")
    signal.signal(signal.SIGTERM, _interrupted)
    main()
