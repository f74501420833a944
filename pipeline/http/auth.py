"""Bearer tokens of the HTTP ingress: which token may publish which event types.

Tokens come from ``MSM_INGRESS_TOKENS`` (``"token1:file.uploaded,user.deleted;token2:*"``) or a
secrets file named by ``MSM_INGRESS_TOKENS_FILE`` (YAML or JSON: token -> list of event types or
``"*"``); both may be set and are merged. With none configured the ingress is open (local dev).

Only SHA-256 digests of tokens are kept, compared with :func:`hmac.compare_digest` against every
stored digest, so neither memory dumps nor timing reveal a token. No message, log line or error
here ever contains a token: problems name the entry by position instead.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline.http.errors import TokenConfigError

ENV_TOKENS = "MSM_INGRESS_TOKENS"
ENV_TOKENS_FILE = "MSM_INGRESS_TOKENS_FILE"
ALL = "*"

Grants = frozenset[str]  # event types, or {"*"} for every type


class Verdict(enum.Enum):
    ALLOWED = "allowed"
    MISSING = "missing"  # no bearer token presented: 401
    INVALID = "invalid"  # malformed header or unknown token: 401
    FORBIDDEN = "forbidden"  # a known token without a grant for some type: 403


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    forbidden: tuple[str, ...] = ()  # the event types refused, for a FORBIDDEN verdict

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOWED


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _grants(types: Iterable[str], where: str) -> Grants:
    cleaned = frozenset(t.strip() for t in types)
    if not cleaned or "" in cleaned:
        raise TokenConfigError(f"{where}: empty event type; give event types or '*'")
    return frozenset({ALL}) if ALL in cleaned else cleaned


@dataclass(frozen=True)
class TokenStore:
    """Token digests and their grants; an empty store means the ingress is open."""

    _grants: Mapping[bytes, Grants] = field(default_factory=dict, repr=False)

    @classmethod
    def from_mapping(
        cls, tokens: Mapping[str, Iterable[str]], source: str = "tokens"
    ) -> TokenStore:
        merged: dict[bytes, set[str]] = {}
        for position, (token, types) in enumerate(tokens.items(), start=1):
            where = f"{source}, entry {position}"
            if not token or token != token.strip():
                raise TokenConfigError(f"{where}: a token must be non-empty without spaces around")
            merged.setdefault(_digest(token), set()).update(_grants(types, where))
        return cls({d: _grants(t, source) for d, t in merged.items()})

    def merged(self, other: TokenStore) -> TokenStore:
        out = {d: set(g) for d, g in self._grants.items()}
        for digest, grants in other._grants.items():
            out.setdefault(digest, set()).update(grants)
        return TokenStore({d: _grants(g, "tokens") for d, g in out.items()})

    @property
    def open(self) -> bool:
        return not self._grants

    def __len__(self) -> int:
        return len(self._grants)

    def event_types(self) -> frozenset[str]:
        """Every event type some token names (``*`` included), to check against the topology."""
        return frozenset[str]().union(*self._grants.values())

    def lookup(self, token: str) -> Grants | None:
        """The grants of ``token``; compares against every digest, without an early exit."""
        presented = _digest(token)
        found: Grants | None = None
        for digest, grants in self._grants.items():
            if hmac.compare_digest(digest, presented):
                found = grants
        return found

    def authorize(self, authorization: str | None, event_types: Iterable[str]) -> Decision:
        """Whether the ``Authorization`` header value may publish every one of ``event_types``."""
        if self.open:
            return Decision(Verdict.ALLOWED)
        if authorization is None or not authorization.strip():
            return Decision(Verdict.MISSING)
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return Decision(Verdict.INVALID)
        grants = self.lookup(token)
        if grants is None:
            return Decision(Verdict.INVALID)
        if ALL in grants:
            return Decision(Verdict.ALLOWED)
        refused = sorted({t for t in event_types if t not in grants})
        return Decision(Verdict.FORBIDDEN, tuple(refused)) if refused else Decision(Verdict.ALLOWED)


def parse_tokens_text(text: str, source: str = ENV_TOKENS) -> TokenStore:
    """``"token1:type.a,type.b;token2:*"``; a token may itself contain ':' (split at the last)."""
    tokens: dict[str, list[str]] = {}
    entries = [e.strip() for e in text.split(";")]
    for position, entry in enumerate((e for e in entries if e), start=1):
        token, sep, types = entry.rpartition(":")
        if not sep or not token.strip():
            raise TokenConfigError(
                f"{source}, entry {position}: expected 'token:event.type,...' or 'token:*'"
            )
        tokens.setdefault(token.strip(), []).extend(types.split(","))
    if not tokens:
        raise TokenConfigError(f"{source} is set but names no token")  # fail closed, not open
    return TokenStore.from_mapping(tokens, source)


def parse_tokens_data(data: object, source: str) -> TokenStore:
    """A decoded secrets file: a mapping token -> list of event types, or ``"*"``."""
    if not isinstance(data, dict) or not data:
        raise TokenConfigError(
            f"{source}: expected a non-empty mapping of token -> event types or '*'"
        )
    tokens: dict[str, list[str]] = {}
    for position, (token, types) in enumerate(data.items(), start=1):
        where = f"{source}, entry {position}"
        if not isinstance(token, str):
            raise TokenConfigError(f"{where}: a token must be a string")
        if isinstance(types, str):
            types = [types]
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise TokenConfigError(f"{where}: expected a list of event types or '*'")
        tokens[token] = types
    return TokenStore.from_mapping(tokens, source)


def read_tokens_file(path: Path | str) -> TokenStore:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenConfigError(
            f"{source}: cannot read the tokens file ({type(exc).__name__})"
        ) from None
    try:
        data = yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError:
        # The parser's message quotes the offending line, which may hold a token.
        raise TokenConfigError(f"{source}: not valid YAML or JSON") from None
    return parse_tokens_data(data, source)


def load_tokens(environ: Mapping[str, str] | None = None) -> TokenStore:
    """The tokens configured in the environment (``os.environ`` by default); empty when none."""
    env = os.environ if environ is None else environ
    store = TokenStore()
    text = env.get(ENV_TOKENS, "")
    if text.strip():
        store = store.merged(parse_tokens_text(text))
    path = env.get(ENV_TOKENS_FILE, "")
    if path.strip():
        store = store.merged(read_tokens_file(path.strip()))
    return store
