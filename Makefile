# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv run test test-deps test-unit test-integration lint fmt broker-start broker-stop clean bench bench-smoke bench-deps chaos chaos-smoke

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Broker, topics, a few example events (one delayed), the example HTTP endpoint of the
# search-indexer subscriber in the background, then every layer in the foreground: Ctrl-C stops
# both (the trap stops the endpoint however the worker ends).
run: venv
	$(BIN)/msm broker start
	$(BIN)/msm topology apply
	$(BIN)/msm produce file.uploaded '{"file_id": "f-1", "owner_id": "u-1", "path": "/photos/cat.png", "size": 1234, "mime_type": "image/png", "uploaded_at": "2025-01-02T03:04:05Z"}'
	$(BIN)/msm produce file.uploaded --delay 30s '{"file_id": "f-2", "owner_id": "u-1", "path": "/docs/report.pdf", "size": 52000, "mime_type": "application/pdf", "uploaded_at": "2025-01-02T03:04:06Z", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}'
	$(BIN)/msm produce user.deleted '{"user_id": "u-2", "deleted_at": "2025-01-02T03:05:00Z", "reason": "USER_REQUEST"}'
	$(BIN)/msm produce payment.captured '{"payment_id": "p-1", "order_id": "o-1", "amount_cents": 1999, "currency": "EUR", "customer_email": "ada@example.com"}'
	$(BIN)/msm produce maintenance.cleanup '{"scope": "temp", "older_than_days": 7}'
	$(BIN)/python -m examples.endpoint --port 8081 & endpoint=$$!; \
	trap 'kill $$endpoint 2>/dev/null' EXIT; trap 'exit 130' INT TERM; \
	$(BIN)/msm worker

# Tools the integration tests run for real (Debian packages): Prometheus scrapes a worker,
# headless Chromium renders its status page, PostgreSQL is the CDC source (the tests start a
# private cluster with wal_level=logical). Installed only when missing (~35 s on Debian 12).
test-deps:
	@missing=""; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	{ command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } \
		|| missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		echo "test-deps: installing$$missing"; \
		apt-get update && apt-get install -y --no-install-recommends $$missing; \
	fi

test: venv test-deps
	$(BIN)/msm broker fetch
	$(BIN)/pytest -q -p no:cacheprovider

test-unit: venv
	$(BIN)/pytest -q tests/unit

test-integration: venv test-deps
	$(BIN)/pytest -q tests/integration

lint: venv
	$(BIN)/ruff check pipeline tests loadtest chaos
	$(BIN)/ruff format --check pipeline tests loadtest chaos
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff format pipeline tests loadtest chaos
	$(BIN)/ruff check --fix pipeline tests loadtest chaos

broker-start: venv
	$(BIN)/msm broker start

broker-stop: venv
	$(BIN)/msm broker stop

# Load test (issue 5): every scenario against the local broker, report + plots under
# loadtest/results/<date>-<commit>/, copied to loadtest/results/latest/. The smoke run checks the
# harness and the report, not timings (CI): seconds per scenario, in a temp dir.
bench-deps:
	command -v redis-server || (apt-get update && apt-get install -y redis-server)

# BASELINE=loadtest/results/<run> adds a before/after section to the report.
bench: venv bench-deps
	$(BIN)/msm broker start
	out=loadtest/results/$$(date +%Y%m%d-%H%M%S)-$$(git rev-parse --short HEAD); \
	$(BIN)/python -m loadtest --out $$out $(if $(BASELINE),--baseline $(BASELINE)); code=$$?; \
	if [ -f $$out/report.md ]; then \
		rm -rf loadtest/results/latest && mkdir -p loadtest/results/latest && \
		cp $$out/report.md $$out/*.png loadtest/results/latest/ 2>/dev/null; \
	fi; exit $$code

bench-smoke: venv bench-deps
	$(BIN)/msm broker start
	out=$$(mktemp -d); \
	$(BIN)/python -m loadtest --smoke --out $$out; code=$$?; \
	test -s $$out/report.md || { echo "bench-smoke: no report produced" >&2; exit 1; }; \
	echo "bench-smoke: report at $$out/report.md"; exit $$code

# Chaos suite (issue 6): faults under load, every event accounted for by a ledger; report under
# chaos/results/<date>-<time>-<commit>/, copied to chaos/results/latest/. Fails (exit 1) when a
# scenario lost, reordered or early-delivered an event, or crashed. The smoke run is CI's.
# The smoke runs the two kill-and-restart scenarios (layers, broker) for seconds each.
CHAOS_SMOKE ?= kill-layers,broker-kill

chaos: venv
	$(BIN)/msm broker start
	out=chaos/results/$$(date +%Y%m%d-%H%M%S)-$$(git rev-parse --short HEAD); \
	$(BIN)/python -m chaos --out $$out; code=$$?; \
	if [ -f $$out/report.md ]; then \
		rm -rf chaos/results/latest && mkdir -p chaos/results/latest && \
		cp $$out/report.md chaos/results/latest/; \
	fi; exit $$code

chaos-smoke: venv
	$(BIN)/msm broker start
	out=$$(mktemp -d); \
	$(BIN)/python -m chaos --smoke --scenarios $(CHAOS_SMOKE) --out $$out; code=$$?; \
	test -s $$out/report.md || { echo "chaos-smoke: no report produced" >&2; exit 1; }; \
	echo "chaos-smoke: report at $$out/report.md"; exit $$code

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
