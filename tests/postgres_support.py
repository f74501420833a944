"""A private PostgreSQL cluster for integration tests: real logical replication, no Docker.

Each :class:`PostgresServer` runs initdb into a fresh temporary directory, listens on 127.0.0.1
on a free port and is configured for logical decoding (``wal_level=logical``) with durability
off, because tests need speed, not crash safety. initdb and postgres refuse to run as root, so
as root every server command runs as the ``postgres`` OS user (``runuser``).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

_COMMAND_TIMEOUT_S = 120
_START_ATTEMPTS = 3
_FAST_STOP_S = 15
_INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install Debian's "
    "`postgresql` package (apt-get install postgresql) or put its pg_config on PATH"
)
_CONFIG = {
    "listen_addresses": "'127.0.0.1'",
    "wal_level": "logical",
    "max_replication_slots": "32",
    "max_wal_senders": "32",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
_HBA = """\
local all all trust
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
local replication all trust
host replication all 127.0.0.1/32 trust
host replication all ::1/128 trust
"""


class PostgresNotFoundError(RuntimeError):
    """No PostgreSQL server binaries on this machine: the tests cannot run, never skip."""


def find_bindir(debian_root: Path = Path("/usr/lib/postgresql")) -> Path:
    """``pg_config --bindir`` when it has initdb, else the newest ``/usr/lib/postgresql/*/bin``.

    Debian's pg_config comes with libpq-dev and may name a version whose server is missing, and
    Debian keeps initdb off PATH, so both places are checked for the binaries themselves.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False, timeout=30
        )
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates += sorted(debian_root.glob("*/bin"), key=version, reverse=True)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise PostgresNotFoundError(_INSTALL_HINT)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class PgTable:
    """A uniquely named table of one test, with names for its publication and slot."""

    dsn: str
    schema: str
    name: str
    publication: str
    slot: str

    @property
    def qualified(self) -> str:
        """``schema.name`` as CDC configuration spells a table (both are lower-case here)."""
        return f"{self.schema}.{self.name}"

    @staticmethod
    def unique_names(dsn: str, schema: str = "public") -> PgTable:
        suffix = uuid.uuid4().hex[:12]
        return PgTable(dsn, schema, f"t_{suffix}", f"pub_{suffix}", f"slot_{suffix}")


class PostgresServer:
    """One throwaway cluster; ``start()``/``stop()`` or use it as a context manager."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self._settings = {**_CONFIG, **(settings or {})}
        self._bindir: Path | None = None
        self._root: Path | None = None
        self._port: int | None = None
        self._owner: pwd.struct_passwd | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the PostgreSQL server is not running")
        return self._port

    @property
    def dsn(self) -> str:
        """A libpq key/value string over TCP, as production CDC connects."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres connect_timeout=10"

    @property
    def root(self) -> Path:
        if self._root is None:
            raise RuntimeError("the PostgreSQL server is not running")
        return self._root

    def start(self) -> None:
        self._bindir = find_bindir()
        if os.geteuid() == 0:
            try:
                self._owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresNotFoundError(
                    f"running as root needs the `postgres` OS user: {_INSTALL_HINT}"
                ) from None
        self._root = Path(tempfile.mkdtemp(prefix="msm-pg-"))
        try:
            (self._root / "sock").mkdir()
            self._chown(self._root, self._root / "sock")
            self._run(
                "initdb",
                "-D", str(self._root / "data"),
                "-U", "postgres",
                "-A", "trust",
                "-E", "UTF8",
                "--locale=C",
                "--no-sync",
            )  # fmt: skip
            data = self._root / "data"
            (data / "pg_hba.conf").write_text(_HBA)
            with (data / "postgresql.conf").open("a") as conf:
                conf.write("\ninclude 'msm.conf'\n")
            self._start_on_free_port()
        except BaseException:
            self._remove()
            raise

    def stop(self) -> None:
        if self._root is None:
            return
        try:
            if self._port is not None:
                self._stop_server()
        finally:
            self._port = None
            self._remove()

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        log = self.root / "server.log"
        return (
            "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
        )

    def _start_on_free_port(self) -> None:
        """A port found free can be taken before postgres binds it: try a few."""
        root = self.root
        for attempt in range(_START_ATTEMPTS):
            port = _free_port()
            settings = {
                **self._settings,
                "port": str(port),
                "unix_socket_directories": f"'{root / 'sock'}'",
            }
            conf = "".join(f"{key} = {value}\n" for key, value in settings.items())
            (root / "data" / "msm.conf").write_text(conf)
            self._chown(root / "data" / "msm.conf", root / "data" / "pg_hba.conf")
            try:
                self._run(
                    "pg_ctl", "-D", str(root / "data"), "-l", str(root / "server.log"),
                    "-w", "-t", "60", "start",
                )  # fmt: skip
            except RuntimeError:
                if attempt == _START_ATTEMPTS - 1:
                    raise
                continue
            self._port = port
            return

    def _stop_server(self) -> None:
        """Fast shutdown waits for walsenders to see their WAL confirmed, which a test that
        left a stream unread never does: after a while, stop immediately instead."""
        data = str(self.root / "data")
        try:
            self._run("pg_ctl", "-D", data, "-m", "fast", "-w", "-t", str(_FAST_STOP_S), "stop")
        except RuntimeError:
            self._run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")

    def _run(self, tool: str, *args: str) -> None:
        assert self._bindir is not None
        command = [str(self._bindir / tool), *args]
        if self._owner is not None:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(
            command,
            cwd=self._root,
            capture_output=True,
            text=True,
            check=False,
            timeout=_COMMAND_TIMEOUT_S,
        )
        if result.returncode != 0:
            tail = self.log_tail() if self._root is not None else ""
            raise RuntimeError(
                f"{tool} failed (exit {result.returncode}): {result.stderr.strip()}\n{tail}"
            )

    def _chown(self, *paths: Path) -> None:
        if self._owner is not None:
            for path in paths:
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)

    def _remove(self) -> None:
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
