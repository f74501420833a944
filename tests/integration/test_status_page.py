"""The worker's status page in a real browser: headless Chromium (Debian's ``chromium``) loads
``/status`` from a running five-layer worker; its JavaScript must have fetched ``status.json``
and rendered a row per subscriber with the same numbers. The screenshot is kept as a test
artifact (``test-artifacts/status-page.png``).
"""

from __future__ import annotations

import html.parser
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from tests.integration._observed_worker import (
    ARTIFACTS,
    Observed,
    done_counts,
    observed_worker,
    require_tool,
)

pytestmark = pytest.mark.integration

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def observed(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, admin: AdminClient
) -> Iterator[Observed]:
    require_tool("chromium")
    with observed_worker(tmp_path_factory.mktemp("status"), kafka_bootstrap, admin) as obs:
        yield obs


def chromium(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on ``url``; ``--virtual-time-budget`` lets the page's script run."""
    command = [
        require_tool("chromium"),
        "--headless",
        "--no-sandbox",  # root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1200,800",
        "--virtual-time-budget=5000",
        *args,
        url,
    ]
    env = {**os.environ, "HOME": str(profile)}  # Chromium writes its config under HOME
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False, env=env)


class Rows(html.parser.HTMLParser):
    """The subscriber table's rows in the dumped DOM: name -> {cell class: text}."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self._row: str | None = None
        self._cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-subscriber"):
            self._row = a["data-subscriber"]
            self.rows[self._row or ""] = {}
        elif tag == "td" and self._row is not None:
            self._cell = (a.get("class") or "").split(" ")[0]
            self.rows[self._row][self._cell] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._cell is not None:
            self.rows[self._row][self._cell] += data


def test_status_page_renders_subscribers_from_the_json_in_chromium(observed: Observed) -> None:
    sizes = [5, 50, 500, 5000, 7, 8]
    observed.publish(f"page-{uuid.uuid4().hex[:8]}", sizes)
    expected = {"audit": len(sizes), "small": sum(s < 100 for s in sizes)}
    # Lag is sampled every 10 s (pipeline/worker/lag_metrics.py): wait for a first sample too.
    status = observed.wait_status(
        lambda s: done_counts(s) == expected and all(r["lag"] == 0 for r in s["subscribers"]),
        f"handlers done {expected}, lag sampled and 0",
    )
    assert len(status["times"]) >= 2  # the sampler keeps a history for the charts
    profile = observed.directory / "chromium"
    url = f"{observed.url}/status"

    dom = chromium(url, profile, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-3000:]
    parser = Rows()
    parser.feed(dom.stdout)
    assert set(parser.rows) == {"audit", "small"}, dom.stdout[-3000:]
    for name, done in expected.items():
        row = parser.rows[name]
        assert row["done"] == str(done), row  # the number the JSON had: the script ran
        assert row["kind"] == "handler"
        assert row["lag"] == "0", row
    assert 'data-updated="' in dom.stdout
    assert observed.topology.namespace in dom.stdout

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "status-page.png"
    shot.unlink(missing_ok=True)
    result = chromium(url, profile, f"--screenshot={shot}")
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"status page screenshot: {shot}")
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 20_000, f"{len(data)} bytes: a blank page?"
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 800)
