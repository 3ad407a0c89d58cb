"""RUN-1: the generated service stops the way Kubernetes stops it, and no request fails.

Kubernetes deletes a pod in two parallel steps: the endpoints and then the ALB stop sending new
requests, and the kubelet runs preStop, then sends SIGTERM, then SIGKILL at the grace period. The
test replays that on a real process started as the image starts it (the Dockerfile's CMD, with the
manifest's environment), against PostgreSQL, under a steady loop of logins (bcrypt: each request
is long enough to be in flight): the clients stop sending new requests (the load balancer has
deregistered the pod), SIGTERM arrives while requests are still being served, every one of them
must complete, and the process must exit on its own within the time the grace period leaves after
preStop.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import REQUIRED, generate, output, python_for, run
from test_kubernetes import app_container, pod_spec, render

CLIENTS = 6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def container_command(service: Path, port: int) -> list[str]:
    """The image's CMD, listening on a loopback port of this machine instead of 0.0.0.0:8000."""
    (cmd,) = re.findall(r"^CMD (\[.*\])$", (service / "Dockerfile").read_text(), re.M)
    argv = json.loads(cmd)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    return argv


def request(conn: http.client.HTTPConnection, method: str, path: str, body: dict[str, str] | None = None) -> int:
    conn.request(method, path, body=json.dumps(body) if body else None, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    return response.status


@pytest.fixture(scope="module")
def stopped_service(tmp_path_factory: pytest.TempPathFactory, service_venv, test_database_url: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    service = generate(tmp_path_factory.mktemp("shutdown") / "service", REQUIRED)
    spec = pod_spec(render(service, "prod"), service)
    app = app_container(spec)
    timing = {
        "pre_stop": int(app["lifecycle"]["preStop"]["sleep"]["seconds"]),
        "grace": int(spec["terminationGracePeriodSeconds"]),
    }
    manifest_env = {v["name"]: v["value"] for v in app["env"] if "value" in v}

    version = str(yaml.safe_load((service / ".copier-answers.yml").read_text())["python_version"])
    venv = service_venv(version)
    proc = run(["make", "install", f"PYTHON={python_for(version)}", f"VENV={venv}"], cwd=service, timeout=900)
    assert proc.returncode == 0, output(proc)
    env = {
        **os.environ,
        **manifest_env,
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "ENVIRONMENT": "dev",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": test_database_url,
        "SECRET_KEY": secrets.token_urlsafe(48),
    }
    migrate = subprocess.run(["alembic", "upgrade", "head"], cwd=service, env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stderr

    port = free_port()
    server = subprocess.Popen(container_command(service, port), cwd=service, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if request(http.client.HTTPConnection("127.0.0.1", port, timeout=5), "GET", "/health") == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the service did not start"
            time.sleep(0.1)
        user = {"username": f"drain-{secrets.token_hex(4)}", "password": secrets.token_urlsafe(16)}
        assert request(http.client.HTTPConnection("127.0.0.1", port, timeout=10), "POST", "/users", user) == 201

        lock, stop = threading.Lock(), threading.Event()
        results: list[tuple[float, float, object]] = []

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # keep-alive, as the ALB
            while True:
                with lock:  # once the load balancer has stopped, no new request starts
                    if stop.is_set():
                        return
                    started = time.monotonic()
                try:
                    outcome: object = request(conn, "POST", "/auth/token", user)
                except OSError as error:
                    outcome = repr(error)
                results.append((started, time.monotonic(), outcome))

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(3)
        with lock:
            stop.set()
        sigterm_at = time.monotonic()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=timing["grace"] - timing["pre_stop"])
            exited_after = time.monotonic() - sigterm_at
        except subprocess.TimeoutExpired:
            exited_after = None
        for thread in threads:
            thread.join(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
        log = server.communicate()[0]
    return {**timing, "results": results, "sigterm_at": sigterm_at, "exited_after": exited_after,
            "returncode": server.returncode, "log": log}  # fmt: skip


def test_requests_in_flight_at_sigterm_complete(stopped_service: dict[str, object]) -> None:
    results = stopped_service["results"]
    assert isinstance(results, list)
    sigterm_at = float(stopped_service["sigterm_at"])  # type: ignore[arg-type]
    in_flight = [r for r in results if r[0] < sigterm_at < r[1]]
    assert in_flight, "no request was in flight at SIGTERM: the test proved nothing"
    failed = [outcome for _, _, outcome in results if outcome != 200]
    assert not failed, f"RUN-1: {len(failed)} of {len(results)} requests failed around SIGTERM: {failed[:5]}"
    print(f"\n{len(results)} logins, {len(in_flight)} in flight at SIGTERM, all 200")


def test_process_exits_on_its_own_within_the_grace_period(stopped_service: dict[str, object]) -> None:
    exited_after, budget = stopped_service["exited_after"], int(stopped_service["grace"]) - int(stopped_service["pre_stop"])  # type: ignore[call-overload]
    assert exited_after is not None, (
        f"RUN-1: still running {budget} s after SIGTERM, the kubelet would SIGKILL it\n{stopped_service['log']}"
    )
    # uvicorn re-raises the signal once it has shut down cleanly, so the exit status is SIGTERM's.
    assert stopped_service["returncode"] in {0, -signal.SIGTERM}, stopped_service["log"]
    assert "Application shutdown complete" in str(stopped_service["log"]), stopped_service["log"]
    print(f"exited {exited_after:.2f} s after SIGTERM (budget {budget} s)")
