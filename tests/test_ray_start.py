"""Starting Ray: a local start that times out is tried again after the half
session it left is cleared, one that never succeeds is a ``BuildError`` naming
the cause (pure logic; Ray's own start is exercised in test_ray); a cluster
address nobody answers at, or where something other than Ray answers, fails in
seconds, naming it (real sockets, a real HTTP server and a real gRPC server)."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from index.errors import BuildError
from index.ray_ingest import (
    check_address,
    describe_reply,
    is_http2_settings,
    is_ray_command,
    start_with_retries,
)
from tests.conftest import CORPUS


class FlakyStart:
    """``ray.init`` that fails ``failures`` times the way Ray 2.60 does."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls, self.resets = failures, 0, 0

    def init(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise Exception("The current node timed out during startup.")

    def reset(self) -> None:
        self.resets += 1


def test_a_start_that_times_out_is_tried_again() -> None:
    ray = FlakyStart(failures=2)
    start_with_retries(ray.init, ray.reset, tries=3)
    assert (ray.calls, ray.resets) == (3, 2)


def test_a_start_that_never_succeeds_names_its_cause() -> None:
    ray = FlakyStart(failures=5)
    with pytest.raises(BuildError, match=r"3 tries.*timed out during startup"):
        start_with_retries(ray.init, ray.reset, tries=3)
    assert (ray.calls, ray.resets) == (3, 3)


def test_a_start_that_succeeds_is_not_reset() -> None:
    ray = FlakyStart(failures=0)
    start_with_retries(ray.init, ray.reset)
    assert (ray.calls, ray.resets) == (1, 0)


def test_only_rays_own_processes_are_taken_for_a_failed_starts() -> None:
    site = "/srv/.venv/lib/python3.11/site-packages/ray"
    assert is_ray_command([f"{site}/core/src/ray/gcs/gcs_server", "--log_dir=/tmp/ray/x"])
    assert is_ray_command(["python", "-u", f"{site}/_private/log_monitor.py"])
    assert is_ray_command(["ray::IDLE"]) and is_ray_command(["ray::DashboardAgent"])
    # A podcite server whose index lies under a folder named ray is not Ray.
    assert not is_ray_command([".venv/bin/podcite", "serve", "--index", "/tmp/t/ray/index"])
    assert not is_ray_command([])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # free again once closed: nothing listens


def test_an_address_nobody_answers_at_fails_at_once_naming_it() -> None:
    port = _closed_port()
    with pytest.raises(BuildError, match=rf"--ray 127\.0\.0\.1:{port}: no Ray cluster answers"):
        check_address(f"127.0.0.1:{port}", timeout_s=2.0)
    with pytest.raises(BuildError, match="give HOST:PORT"):
        check_address("head-node")
    check_address("auto")  # Ray's to find


def test_a_port_that_answers_but_is_not_ray_fails_at_once_saying_what_answered() -> None:
    """``ray.init`` at an HTTP/1 port (the dashboard's, say) retries for
    minutes; a gRPC server, as Ray's GCS and Ray Client are, passes."""
    grpc = pytest.importorskip("grpc")
    http = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        with pytest.raises(BuildError, match=r"not a Ray cluster \(it replied in text"):
            check_address(f"127.0.0.1:{http.server_address[1]}")
    finally:
        http.shutdown()
        http.server_close()
    with socket.socket() as silent:  # accepts, says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(BuildError, match=r"not a Ray cluster \(no reply\)"):
            check_address(f"ray://127.0.0.1:{silent.getsockname()[1]}", timeout_s=1.0)
    server = grpc.server(ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        check_address(f"127.0.0.1:{port}")
        check_address(f"ray://127.0.0.1:{port}")
    finally:
        server.stop(None)


def test_with_ray_tls_on_only_the_connection_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster behind TLS would refuse a plain HTTP/2 greeting."""
    monkeypatch.setenv("RAY_USE_TLS", "true")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        check_address(f"127.0.0.1:{silent.getsockname()[1]}", timeout_s=1.0)
    with pytest.raises(BuildError, match="no Ray cluster answers"):
        check_address(f"127.0.0.1:{_closed_port()}", timeout_s=1.0)


def test_only_an_http2_settings_frame_reads_as_grpc() -> None:
    settings = bytes([0, 0, 6, 4, 0, 0, 0, 0, 0])
    assert is_http2_settings(settings)
    assert not is_http2_settings(b"HTTP/1.1 400 Bad")
    assert not is_http2_settings(bytes([0, 0, 6, 4, 0, 0, 0, 0, 1]))  # a stream's frame
    assert not is_http2_settings(settings[:5])
    assert describe_reply(b"HTTP/1.0 400") == "an HTTP/1 server"
    assert describe_reply(None) == describe_reply(b"") == "no reply"
    assert describe_reply(b"<!DOCTYPE") == "it replied in text: '<!DOCTYPE'"
    assert describe_reply(b"\x15\x03\x01") == r"not HTTP/2: b'\x15\x03\x01'"


def test_ingest_with_a_dead_ray_address_says_so_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from server.cli import app

    port = _closed_port()
    index = tmp_path / "index"
    args = ["ingest", str(CORPUS), "--index", str(index), "--ray", f"127.0.0.1:{port}"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 1
    assert f"--ray 127.0.0.1:{port}: no Ray cluster answers there" in out.output
    assert not index.exists()  # nothing written


@pytest.mark.slow
def test_a_real_ray_that_timed_out_starting_starts_on_the_next_try(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ray's own 30 s wait for its raylet runs out (made to, by hiding the
    node from the first start), and the next try in the same process starts a
    Ray that runs a job."""
    ray = pytest.importorskip("ray")
    services = pytest.importorskip("ray._private.services")
    from index import ray_ingest

    assert not ray.is_initialized()
    real_get_node = services.get_node
    tries: list[str] = []

    def get_node(*args: object, **kwargs: object) -> object:
        if len(tries) < 1:  # the first start never sees its raylet register
            raise RuntimeError("raylet not registered yet")
        return real_get_node(*args, **kwargs)

    real_init = ray.init

    def init(*args: object, **kwargs: object) -> object:
        try:
            return real_init(*args, **kwargs)
        except Exception as exc:
            tries.append(str(exc))
            raise

    monkeypatch.setattr(services, "get_node", get_node)
    monkeypatch.setattr(ray, "init", init)
    try:
        ray_ingest.start(None, workers=1)  # raises BuildError if every try fails
        # The first try timed out as Ray does; a later one started (on a loaded
        # machine the second may time out too, which is what the third is for).
        assert tries and "timed out during startup" in tries[0]
        import ray.data

        assert ray.data.range(10).sum("id") == 45
        # The failed start's processes were stopped: one GCS and one raylet run.
        import psutil

        names = [c.name() for c in psutil.Process().children(recursive=True)]
        assert names.count("gcs_server") == 1 and names.count("raylet") == 1
    finally:
        ray.shutdown()
