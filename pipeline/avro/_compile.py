"""Compile a parsed Avro schema into a tree of converter closures (see pipeline.avro.records).

Named types are compiled once and registered before their fields, so recursive records work.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import math
from collections.abc import Mapping

from fastavro.types import Schema

from pipeline.avro._field_errors import (
    Converter,
    FieldError,
    describe,
    expected_name,
    prefix,
    type_name,
    wrong,
)
from pipeline.avro.logical import logical_converter
from pipeline.errors import ConfigError

_FLOAT_MAX = 3.4028234663852886e38
_INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


class _Compiler:
    def __init__(self, named: Mapping[str, object]) -> None:
        self.named = named
        self.kinds = {n: str(t.get("type")) for n, t in named.items() if isinstance(t, dict)}
        self.done: dict[str, Converter] = {}

    def compile(self, node: object) -> Converter:
        if isinstance(node, list):
            return self._union(node)
        if isinstance(node, str):
            return self._primitive(node) or self._reference(node)
        if not isinstance(node, dict):
            raise ConfigError(f"not an Avro schema node: {node!r}")
        logical = node.get("logicalType")
        if isinstance(logical, str) and (convert := logical_converter(logical, node)):
            expected = expected_name(node)

            def convert_logical(value: object, errors: list[FieldError]) -> object:
                try:
                    return convert(value)
                except ValueError as exc:
                    errors.append(FieldError("", f"invalid {expected}", describe(value), str(exc)))
                    return None

            return convert_logical
        kind = node.get("type")
        if kind == "record":
            return self._record(node)
        if kind == "enum":
            return self._enum(node)
        if kind == "fixed":
            return self._fixed(node)
        if kind == "array":
            return self._array(self.compile(node["items"]))
        if kind == "map":
            return self._map(self.compile(node["values"]))
        return self.compile(kind)

    def _reference(self, name: str) -> Converter:
        if name in self.done:
            return self.done[name]
        if name not in self.named:
            raise ConfigError(f"unknown Avro type {name!r}")
        return self.compile(self.named[name])

    def _primitive(self, kind: str) -> Converter | None:
        if kind in _INT_RANGES:
            low, high = _INT_RANGES[kind]

            def integer(value: object, errors: list[FieldError]) -> object:
                if not isinstance(value, int) or isinstance(value, bool):
                    wrong(errors, value, kind)
                elif not low <= value <= high:
                    errors.append(FieldError("", f"out of range for {kind}", describe(value)))
                return value

            return integer
        if kind in ("float", "double"):
            single = kind == "float"

            def real(value: object, errors: list[FieldError]) -> object:
                if not isinstance(value, int | float) or isinstance(value, bool):
                    wrong(errors, value, kind)
                    return value
                number = float(value)
                if single and math.isfinite(number) and abs(number) > _FLOAT_MAX:
                    errors.append(FieldError("", "out of range for float", describe(value)))
                return number

            return real
        if kind == "bytes":
            return _bytes_converter(None, "bytes (base64)")
        python_type = {"null": type(None), "boolean": bool, "string": str}.get(kind)
        if python_type is None:
            return None

        def simple(value: object, errors: list[FieldError]) -> object:
            if type(value) is not python_type:
                wrong(errors, value, kind)
            return value

        return simple

    def _record(self, node: dict[str, object]) -> Converter:
        name = str(node["name"])
        fields: list[tuple[str, Converter, bool, object, str]] = []
        names: frozenset[str] = frozenset()

        def record(value: object, errors: list[FieldError]) -> object:
            if not isinstance(value, Mapping):
                wrong(errors, value, f"record {name}")
                return None
            out: dict[str, object] = {}
            present = 0
            for field, convert, has_default, default, expected in fields:
                if field in value:
                    present += 1
                    start = len(errors)
                    out[field] = convert(value[field], errors)
                    if len(errors) > start:
                        prefix(errors, start, field)
                elif has_default:
                    mutable = isinstance(default, list | dict)
                    out[field] = copy.deepcopy(default) if mutable else default
                else:
                    errors.append(FieldError(field, "required field is missing", None, expected))
            if present != len(value):
                for key in value:
                    if key not in names:
                        errors.append(FieldError(str(key), "unknown field", describe(value[key])))
            return out

        self.done[name] = record  # before the fields: a record may refer to itself
        field_nodes = node["fields"]
        assert isinstance(field_nodes, list)
        for field in field_nodes:
            convert = self.compile(field["type"])
            has_default = "default" in field
            default = (
                _default(convert, field["type"], field["default"], name, field["name"])
                if has_default
                else None
            )
            expected = expected_name(field["type"])
            fields.append((field["name"], convert, has_default, default, expected))
        names = frozenset(f[0] for f in fields)
        return record

    def _enum(self, node: dict[str, object]) -> Converter:
        listed = node["symbols"]
        assert isinstance(listed, list)
        symbols = frozenset(str(s) for s in listed)
        expected = f"one of {sorted(symbols)}"

        def enum(value: object, errors: list[FieldError]) -> object:
            if not isinstance(value, str):
                wrong(errors, value, f"enum {node['name']}")
            elif value not in symbols:
                errors.append(FieldError("", "not a symbol of the enum", describe(value), expected))
            return value

        self.done[str(node["name"])] = enum
        return enum

    def _fixed(self, node: dict[str, object]) -> Converter:
        size = node["size"]
        assert isinstance(size, int)
        convert = _bytes_converter(size, f"fixed {node['name']} of {size} bytes (base64)")
        self.done[str(node["name"])] = convert
        return convert

    def _array(self, item: Converter) -> Converter:
        def array(value: object, errors: list[FieldError]) -> object:
            if not isinstance(value, list | tuple):
                wrong(errors, value, "array")
                return None
            out = []
            for index, element in enumerate(value):
                start = len(errors)
                out.append(item(element, errors))
                if len(errors) > start:
                    prefix(errors, start, f"[{index}]")
            return out

        return array

    def _map(self, item: Converter) -> Converter:
        def map_(value: object, errors: list[FieldError]) -> object:
            if not isinstance(value, Mapping):
                wrong(errors, value, "map (object)")
                return None
            out = {}
            for key, element in value.items():
                start = len(errors)
                if not isinstance(key, str):
                    errors.append(FieldError("", "map keys must be strings", describe(key)))
                out[key] = item(element, errors)
                if len(errors) > start:
                    prefix(errors, start, f"[{json.dumps(str(key))}]")
            return out

        return map_

    def _union(self, nodes: list[object]) -> Converter:
        from pipeline.avro._union import union_converter

        branches = [(type_name(n), self.compile(n), n) for n in nodes]
        return union_converter(branches, self.kinds)


def _bytes_converter(size: int | None, expected: str) -> Converter:
    def convert(value: object, errors: list[FieldError]) -> object:
        data: bytes | None = None
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
        elif isinstance(value, str):
            try:
                data = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                errors.append(FieldError("", "invalid base64", describe(value), expected))
                return None
        if data is None:
            wrong(errors, value, expected)
        elif size is not None and len(data) != size:
            errors.append(FieldError("", f"must be {size} bytes", f"{len(data)} bytes", expected))
        return data

    return convert


def _default(convert: Converter, node: object, value: object, record: str, field: str) -> object:
    """A field default as a fastavro value; Avro writes bytes defaults as latin-1 strings."""
    if isinstance(node, list):
        node = node[0]  # a union's default belongs to its first branch
    kind = node.get("type") if isinstance(node, dict) else node
    if isinstance(value, str) and kind in ("bytes", "fixed"):
        return value.encode("latin-1")
    errors: list[FieldError] = []
    out = convert(value, errors)
    if errors:
        raise ConfigError(f"schema {record}: invalid default for field {field!r}: {errors[0]}")
    return out


def compile_schema(schema: Schema, named: Mapping[str, object] | None = None) -> Converter:
    """``named``: full name -> type; defaults to what fastavro.parse_schema recorded."""
    if named is None:
        named = schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}
    return _Compiler(named).compile(schema)
