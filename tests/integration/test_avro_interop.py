"""MSM's single-object encoding against the Apache ``avro`` package, an independent implementation.

Bytes that `msm produce` put on Kafka decode with avro's DatumReader, and bytes avro writes decode
in MSM, old version included.

Fingerprints: the Python ``avro`` package (1.12) keeps ``{"type":"long"}`` in the Parsing
Canonical Form of a logical-type field, against the specification's [PRIMITIVES] rule, so its
fingerprints differ for schemas with logical types. The reference implementation, Java's
``SchemaNormalization.parsingFingerprint("CRC-64-AVRO", schema)`` (org.apache.avro:avro:1.12.0),
gives the values in JAVA_FINGERPRINTS, which MSM must match; for schemas without logical types
the Python package agrees and is checked directly.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import avro.io
import avro.schema
from confluent_kafka.admin import AdminClient

from pipeline.avro import wire
from pipeline.avro.schemas import EventSchemas, load_schema
from pipeline.topology import load_topology
from tests.publish_support import SCHEMAS, consume, file_uploaded, ingress_topics, write_topology

V1 = SCHEMAS / "file_uploaded.v1.avsc"
V2 = SCHEMAS / "file_uploaded.v2.avsc"
MSM = Path(sys.executable).parent / "msm"
JAVA_FINGERPRINTS = {V1: bytes.fromhex("9889f5d5f12c5aff"), V2: bytes.fromhex("a37f5dbe96f760e8")}


def apache(path: Path) -> avro.schema.Schema:
    return avro.schema.parse(path.read_text(encoding="utf-8"))


def apache_single_object(path: Path, datum: dict[str, object]) -> bytes:
    body = io.BytesIO()
    avro.io.DatumWriter(apache(path)).write(datum, avro.io.BinaryEncoder(body))
    return b"\xc3\x01" + JAVA_FINGERPRINTS[path] + body.getvalue()


def apache_read(path: Path, data: bytes) -> object:
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == JAVA_FINGERPRINTS[path]
    body = io.BytesIO(data[10:])
    datum = avro.io.DatumReader(apache(path)).read(avro.io.BinaryDecoder(body))
    assert body.tell() == len(data) - 10  # the whole body, nothing left over
    return datum


def test_msm_produce_bytes_decode_with_apache_avro(
    tmp_path: Path, admin: AdminClient, unique_name: Callable[[str], str], kafka_bootstrap: str
) -> None:
    path = write_topology(tmp_path, unique_name("interop"), kafka_bootstrap)
    topology = load_topology(path)
    payload = file_uploaded(file_id="i-1", sha256="ab" * 32)
    with ingress_topics(admin, topology) as topics:
        result = subprocess.run(
            [str(MSM), "produce", "file.uploaded", json.dumps(payload)],
            capture_output=True,
            text=True,
            env={**os.environ, "MSM_TOPOLOGY": str(path), "MSM_BOOTSTRAP_SERVERS": kafka_bootstrap},
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        [message] = consume(kafka_bootstrap, topics["file.uploaded"], 1)
    value = message.value()
    assert isinstance(value, bytes)
    datum = apache_read(V2, value)
    assert datum == {
        **payload,
        "uploaded_at": datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
    }


def test_apache_avro_bytes_decode_in_msm() -> None:
    datum = {
        "file_id": "a-1",
        "owner_id": "u-9",
        "path": "/a.txt",
        "size": 2**40,
        "mime_type": "text/plain",
        "uploaded_at": datetime(2024, 6, 1, 12, 30, tzinfo=UTC),
        "sha256": None,
    }
    data = apache_single_object(V2, datum)
    assert wire.decode(data, EventSchemas.load(V2, [V1])) == datum


def test_apache_avro_old_version_bytes_resolve_to_current() -> None:
    old = {
        "file_id": "old-1",
        "owner_id": "u-1",
        "path": "/old.bin",
        "size": 7,
        "mime_type": "application/octet-stream",
        "uploaded_at": datetime(2020, 1, 1, tzinfo=UTC),
    }
    data = apache_single_object(V1, old)
    schemas = EventSchemas.load(V2, [V1])
    assert wire.fingerprint_of(data) != schemas.current.fingerprint
    assert wire.decode(data, schemas) == {**old, "sha256": None}


def test_fingerprints_match_the_references() -> None:
    for path, expected in JAVA_FINGERPRINTS.items():
        assert load_schema(path).fingerprint == expected
    for name in ("payment_captured.avsc", "maintenance_cleanup.avsc"):  # no logical types
        path = SCHEMAS / name
        assert load_schema(path).fingerprint == apache(path).fingerprint("CRC-64-AVRO")
