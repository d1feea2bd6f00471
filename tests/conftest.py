"""Shared fixtures: default settings for every test, and a real redis-server."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, settings

from guardrail.instrumentation import configure, get_config

# No per-example deadline and no "too slow" health check: on a busy machine a
# slow example or a slow draw is not a failure.
settings.register_profile("guardrail", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("guardrail")


@pytest.fixture(autouse=True)
def _fresh_config() -> Iterator[None]:
    saved = get_config()
    yield
    configure(**attrs.asdict(saved, recurse=False))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process that can be stopped and started again on its port."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="guardrail-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--enable-debug-command",  # DEBUG SLEEP: a server busy with one slow command
                "local",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.01)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def ping(self) -> bool:
        """True if the server answers PING."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Kill the server (as a crash would) and wait for it to exit."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def client(self) -> object:
        """A redis-py client for this server."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port)


def _running_redis() -> Iterator[RedisServer]:
    """Start a redis-server, yield it, stop it (skipped if none is installed)."""
    executable = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not shutil.which(executable):
        pytest.skip("redis-server is not installed")
    server = RedisServer(executable)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server for the whole session (skipped if none is installed)."""
    yield from _running_redis()


@pytest.fixture(scope="module")
def own_redis_server() -> Iterator[RedisServer]:
    """A redis-server for one test module, free to be stopped, killed and reconfigured."""
    yield from _running_redis()


_namespaces = itertools.count()


@pytest.fixture
def namespace() -> str:
    """A fresh Redis namespace per test, so tests never share counts or trackers."""
    return f"t{os.getpid()}-{next(_namespaces)}"


ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
_SAVED_ARTIFACTS: list[Path] = []


@pytest.fixture
def artifact() -> Callable[[str], Path]:
    """A path under artifacts/ (gitignored); the paths written are listed after the run."""

    def path(name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        out = ARTIFACTS / name
        _SAVED_ARTIFACTS.append(out)
        return out

    return path


#: Fixtures that start a real server: a test using one belongs to the integration tier.
_SERVER_FIXTURES = frozenset({"redis_server", "own_redis_server", "spark"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that starts a real server as an integration test."""
    for item in items:
        if _SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the artifacts the tests saved (screenshots), so a CI log points at them."""
    for path in _SAVED_ARTIFACTS:
        if path.exists():
            terminalreporter.write_line(f"artifact: {path}")


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """One local Spark session (two cores) for the whole run (skipped without pyspark or Java)."""
    pytest.importorskip("pyspark")
    if not shutil.which("java"):
        pytest.skip("no Java runtime for Spark")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("guardrail-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--fuzz-long``: run the loaders' fuzz tests with 20,000 cases each."""
    parser.addoption(
        "--fuzz-long",
        action="store_true",
        default=False,
        help="fuzz every loader with 20,000 cases (GUARDRAIL_FUZZ_CASES overrides)",
    )


@pytest.fixture
def fuzz_cases(request: pytest.FixtureRequest) -> Callable[[int], int]:
    """How many cases a fuzz test runs: its quick budget, or the long run's."""
    import os

    long = request.config.getoption("--fuzz-long")
    override = os.environ.get("GUARDRAIL_FUZZ_CASES")

    def cases(quick: int) -> int:
        if override:
            return int(override)
        return 20_000 if long else quick

    return cases
