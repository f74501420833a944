"""Ingress tokens: parsing the environment and secrets files, and the 401/403 decisions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.http.auth import (
    ENV_TOKENS,
    ENV_TOKENS_FILE,
    Decision,
    TokenStore,
    Verdict,
    load_tokens,
    parse_tokens_text,
    read_tokens_file,
)
from pipeline.http.errors import TokenConfigError

SECRET = "s3cr3t-token-value"


def test_env_format_grants_listed_types_and_star() -> None:
    store = parse_tokens_text(f"{SECRET}:file.uploaded, user.deleted ; admin-tok:*;")
    assert len(store) == 2
    assert store.lookup(SECRET) == frozenset({"file.uploaded", "user.deleted"})
    assert store.lookup("admin-tok") == frozenset({"*"})
    assert store.lookup("nope") is None


def test_token_may_contain_a_colon() -> None:
    store = parse_tokens_text("abc:def:file.uploaded")
    assert store.lookup("abc:def") == frozenset({"file.uploaded"})


def test_only_digests_are_kept() -> None:
    store = parse_tokens_text(f"{SECRET}:*")
    assert SECRET not in repr(store)
    assert all(SECRET.encode() not in digest for digest in store._grants)


@pytest.mark.parametrize("text", [f"{SECRET}", f"{SECRET}:", f"{SECRET}:a,,b", f":{SECRET}"])
def test_bad_env_entries_are_config_errors_without_the_token(text: str) -> None:
    with pytest.raises(TokenConfigError) as caught:
        load_tokens({ENV_TOKENS: f"ok:*;{text}"})
    assert isinstance(caught.value, ConfigError)
    assert "entry 2" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_env_set_without_any_token_fails_closed() -> None:
    with pytest.raises(TokenConfigError, match="names no token"):
        load_tokens({ENV_TOKENS: " ; ;"})
    assert load_tokens({ENV_TOKENS: "  "}).open  # blank is the same as unset


def test_yaml_and_json_files(tmp_path: Path) -> None:
    yml = tmp_path / "tokens.yaml"
    yml.write_text(f"{SECRET}: [file.uploaded]\nother: '*'\n", encoding="utf-8")
    jsn = tmp_path / "tokens.json"
    jsn.write_text(json.dumps({SECRET: ["user.deleted"], "x": "*"}), encoding="utf-8")
    assert read_tokens_file(yml).lookup(SECRET) == frozenset({"file.uploaded"})
    assert read_tokens_file(yml).lookup("other") == frozenset({"*"})
    assert read_tokens_file(jsn).lookup(SECRET) == frozenset({"user.deleted"})


@pytest.mark.parametrize(
    "content",
    [
        "",  # configured but empty: fail closed rather than open
        f"- {SECRET}\n",
        f"{SECRET}: 5\n",
        f"{SECRET}: [file.uploaded, 3]\n",
        f"{SECRET}: [\n",  # not YAML: the parser would quote the line holding the token
    ],
)
def test_bad_files_are_config_errors_without_the_token(tmp_path: Path, content: str) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TokenConfigError) as caught:
        read_tokens_file(path)
    assert str(path) in str(caught.value)
    assert SECRET not in str(caught.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(TokenConfigError, match="cannot read"):
        load_tokens({ENV_TOKENS_FILE: str(tmp_path / "absent.yaml")})


def test_env_and_file_are_merged(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(f"{SECRET}: [user.deleted]\nfile-only: [a.b]\n", encoding="utf-8")
    store = load_tokens({ENV_TOKENS: f"{SECRET}:file.uploaded", ENV_TOKENS_FILE: str(path)})
    assert store.lookup(SECRET) == frozenset({"file.uploaded", "user.deleted"})
    assert store.lookup("file-only") == frozenset({"a.b"})
    assert store.event_types() == frozenset({"file.uploaded", "user.deleted", "a.b"})


def test_nothing_configured_is_open() -> None:
    store = load_tokens({})
    assert store.open
    assert store.authorize(None, ["anything"]) == Decision(Verdict.ALLOWED)


@pytest.fixture
def store() -> TokenStore:
    return parse_tokens_text(f"{SECRET}:file.uploaded;admin:*")


@pytest.mark.parametrize(
    ("header", "verdict"),
    [
        (None, Verdict.MISSING),
        ("", Verdict.MISSING),
        ("Bearer", Verdict.INVALID),
        ("Bearer wrong", Verdict.INVALID),
        (f"Basic {SECRET}", Verdict.INVALID),
        (f"Bearer {SECRET}x", Verdict.INVALID),
        (f"Bearer {SECRET}", Verdict.ALLOWED),
        (f"bearer   {SECRET} ", Verdict.ALLOWED),  # the scheme is case-insensitive
        ("Bearer admin", Verdict.ALLOWED),
    ],
)
def test_authentication(store: TokenStore, header: str | None, verdict: Verdict) -> None:
    assert store.authorize(header, ["file.uploaded"]).verdict is verdict


def test_authorisation_names_every_refused_type(store: TokenStore) -> None:
    decision = store.authorize(f"Bearer {SECRET}", ["file.uploaded", "user.deleted", "a.b"])
    assert decision == Decision(Verdict.FORBIDDEN, ("a.b", "user.deleted"))
    assert not decision.allowed
    assert store.authorize("Bearer admin", ["user.deleted", "a.b"]).allowed
    assert store.authorize(f"Bearer {SECRET}", []).allowed  # authenticated, no type asked yet
