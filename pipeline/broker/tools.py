"""Finding java and mvn, with a message that says what to install when they are missing."""

from __future__ import annotations

import re
import shutil
import subprocess

from pipeline.broker.errors import BrokerError

MIN_JAVA = 17
_JAVA_HINT = (
    f"install Java {MIN_JAVA}+ (e.g. `apt-get install openjdk-17-jre-headless`), "
    "or run Kafka with `docker compose up` and point MSM at it"
)
_MVN_HINT = (
    "install Maven (`apt-get install maven`) so MSM can fetch the Kafka jars from Maven Central, "
    "set KAFKA_HOME to an unpacked Kafka distribution, "
    "or run Kafka with `docker compose up` and point MSM at it"
)
_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def parse_java_major(version_output: str) -> int | None:
    """The major version from ``java -version`` output ("1.8.0_x" is 8, "17.0.15" is 17)."""
    match = _VERSION.search(version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def require_java() -> str:
    """The path of a java >= 17; Kafka 4 brokers do not run on older JVMs."""
    java = shutil.which("java")
    if java is None:
        raise BrokerError(f"java was not found on PATH: {_JAVA_HINT}")
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"could not run `{java} -version` ({exc}): {_JAVA_HINT}") from exc
    major = parse_java_major(out.stderr + out.stdout)
    if major is None:
        raise BrokerError(f"could not read the version of {java}: {_JAVA_HINT}")
    if major < MIN_JAVA:
        raise BrokerError(f"{java} is Java {major}, Kafka needs {MIN_JAVA}+: {_JAVA_HINT}")
    return java


def require_mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(f"mvn was not found on PATH: {_MVN_HINT}")
    return mvn
