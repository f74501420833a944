"""Resolving the broker's jars: KAFKA_HOME if it is a distribution, else Maven into the cache."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

from pipeline.broker.errors import BrokerError
from pipeline.broker.settings import KAFKA_VERSION, BrokerSettings
from pipeline.broker.tools import require_java, require_mvn

POM = Path(__file__).with_name("pom.xml")
_MARKER = "complete"
_MVN_TIMEOUT_S = 900.0


def distribution_libs(kafka_home: Path | None) -> Path | None:
    """``kafka_home/libs`` when it holds a Kafka broker jar, else None."""
    if kafka_home is None:
        return None
    libs = kafka_home / "libs"
    return libs if any(libs.glob("kafka_2.*.jar")) else None


def cached_libs(settings: BrokerSettings) -> Path | None:
    """The cached lib dir, but only once a copy has completed (the marker is written last)."""
    marker = settings.kafka_dir / _MARKER
    return settings.lib_dir if marker.is_file() else None


def ensure_jars(settings: BrokerSettings | None = None) -> Path:
    """The directory of the broker and tools jars, fetching them with Maven the first time.

    A lock serialises concurrent fetches (a CLI start racing the test fixture); a directory
    without the marker is a broken earlier copy and is fetched again from scratch.
    """
    settings = settings or BrokerSettings()
    libs = distribution_libs(settings.kafka_home) or cached_libs(settings)
    if libs is not None:
        return libs
    require_java()
    mvn = require_mvn()
    settings.kafka_dir.mkdir(parents=True, exist_ok=True)
    with (settings.kafka_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        libs = cached_libs(settings)
        if libs is not None:
            return libs
        _fetch(mvn, settings.lib_dir)
        (settings.kafka_dir / _MARKER).write_text(f"kafka {KAFKA_VERSION}\n")
    return settings.lib_dir


def _fetch(mvn: str, lib_dir: Path) -> None:
    shutil.rmtree(lib_dir, ignore_errors=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={lib_dir}",
    ]
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_MVN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(
            f"Maven did not finish fetching the Kafka jars in {exc.timeout} s"
        ) from exc
    if out.returncode != 0 or not any(lib_dir.glob("kafka_2.*.jar")):
        tail = "\n".join((out.stdout + out.stderr).splitlines()[-30:])
        raise BrokerError(
            f"Maven could not fetch the Kafka {KAFKA_VERSION} jars "
            f"(exit {out.returncode}; command: {' '.join(cmd)}):\n{tail}"
        )


def classpath(settings: BrokerSettings | None = None) -> str:
    """The Java classpath of the broker and Kafka's tools (``kafka.tools.*``), for subprocesses."""
    return str(ensure_jars(settings) / "*")
