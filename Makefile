# ShopRank: `make run` serves the API on 127.0.0.1:8080; `make test` runs the whole test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned to the CPU build that lies on this machine kind's disk (any other spelling pulls CUDA builds).
TORCH := torch==2.13.0

.PHONY: run serve prepare install install-serve lint test system-deps compose-check crash-suite demo-screenshot bench eval report students rankers ranker-full recipe recipe-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.serve-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.all-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[train,dev,batch]'
	touch $@

install-serve: $(VENV)/.serve-installed
install: $(VENV)/.all-installed

prepare: install-serve
	$(BIN)/shoprank prepare

run: prepare
	$(BIN)/shoprank serve

serve: run

# Servers the integration tests start themselves (redis-server), the compose validator, the headless browser
# the /demo page test drives (Debian's chromium + chromium-driver, through selenium), and the Java runtime
# PySpark needs for `shoprank batch-embed` and its tests (Debian's default-jre-headless: OpenJDK 17 on bookworm).
system-deps:
	@command -v redis-server >/dev/null && command -v docker-compose >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server docker-compose >/dev/null; }
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }
	@command -v java >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null; }

compose-check: system-deps
	bash .ci/compose-check.sh

# The README's screenshot of /demo, taken by the browser test (tests/integration/test_demo_browser.py) in headless Chromium.
demo-screenshot: install system-deps
	SHOPRANK_TEST_ARTIFACTS=var/test-artifacts $(BIN)/python -m pytest -q -p no:cacheprovider tests/integration/test_demo_browser.py
	cp var/test-artifacts/demo.png docs/demo.png

# The benchmarks behind the figures in docs/indexing.md and docs/serving.md (≈ 15 min on an idle 2-core machine).
bench: install system-deps
	$(BIN)/python bench/index_choice.py --items 54667 --queries 1000
	$(BIN)/python -m bench.endpoints --seconds 10 --concurrency 1 4
	$(BIN)/python -m bench.triton_vs_embedded
	$(BIN)/python -m bench.ranking_phases --rounds 30
	$(BIN)/python bench/freshness/run.py --rates 100,200,250,300,400,500 --seconds 20 --items 2000 --indexer-no-spin
	$(BIN)/python -m bench.batch_embed --items 54667 --rounds 2 --out docs/bench/batch_embed.md  # Spark local[2] (≈ 20 min)

# Lint rules in pyproject.toml ([tool.ruff.lint]); `make test` runs it first.
lint: install
	$(BIN)/ruff check .

test: install system-deps lint
	$(BIN)/python -m pytest -q -p no:cacheprovider tests
	$(MAKE) compose-check

# The full crash suite of issue 20 (CI runs 3 indexer trials and 1 replica trial of 2,000 events): 20 kill -9 trials
# of the indexer and 5 of a serving replica, each at a random point of a 10,000-event stream (13.5 min on 2 cores, 2026-12-04).
crash-suite: install system-deps
	SHOPRANK_CRASH_TRIALS=20 SHOPRANK_CRASH_EVENTS=10000 $(BIN)/python -m pytest -q -s -p no:cacheprovider \
	  tests/integration/test_indexer_crash.py -k kill_9
	SHOPRANK_REPLICA_CRASH_TRIALS=5 SHOPRANK_REPLICA_CRASH_EVENTS=10000 $(BIN)/python -m pytest -q -s -p no:cacheprovider \
	  tests/integration/test_replica_crash.py

eval: install
	$(BIN)/shoprank eval

# The budgeted students of docs/training.md: the served recipe (Pearson KD) and its KD-loss and label ablations,
# each one capped epoch of the trial preset (≈ 5 min each on 2 free cores); the report evaluates every one.
# Their KD targets: the recipe's ranker scored in fp32 on every distinct train pair (training/biencoder/teacher_scores.py).
TRIAL := $(BIN)/shoprank train student --preset trial --max-seconds 900 --teacher-scores artifacts/teacher_scores.npz
TEACHER_RANKER ?= artifacts/recipe-full/ranker-pass2
students: install
	test -f artifacts/teacher_scores.npz || $(BIN)/shoprank teacher-scores $(TEACHER_RANKER)
	$(TRIAL) --out-dir artifacts/student-v2
	$(TRIAL) --out-dir artifacts/student-kd-mse --kd-loss mse
	$(TRIAL) --out-dir artifacts/student-kd-cosent --kd-loss cosent
	$(TRIAL) --out-dir artifacts/student-clicks --no-labels --no-kd
	$(TRIAL) --out-dir artifacts/student-clicks-labels --no-kd

# The budgeted ranker comparison of docs/training.md: three routings of the multi-task ranker and the single-task
# baselines trained the same way (every task capped at 10,000 train rows, 1 epoch; ≈ 45 min on 2 cores in all).
RANKER := $(BIN)/shoprank train ranker --epochs 1 --limit 10000
ALL_TASKS := --tasks query_item,item_item,query_query
rankers: install
	$(RANKER) --out-dir artifacts/ranker-st-query_query --tasks query_query
	$(RANKER) --out-dir artifacts/ranker-st-item_item --tasks item_item
	$(RANKER) --out-dir artifacts/ranker-st-query_item --tasks query_item
	$(RANKER) --out-dir artifacts/ranker-mt-prefix $(ALL_TASKS) --routing prefix
	$(RANKER) --out-dir artifacts/ranker-mt-multihead $(ALL_TASKS) --routing multihead
	$(RANKER) --out-dir artifacts/ranker-mt-mhp $(ALL_TASKS) --routing mhp --private-layers 1

# The multi-task ranker on all train rows (query_item 58,737 + item_item 12,000 + query_query 6,000), 1 epoch (≈ 28 min).
ranker-full: install
	$(BIN)/shoprank train ranker --epochs 1 --out-dir artifacts/ranker-mt-prefix-full $(ALL_TASKS) --routing prefix

# The whole recipe as one resumable command (training/recipe.py): ranker → distillation scores → student → adaptor → ONNX
# (fp32 + int8) → parity → calibration → the test table, into artifacts/recipe-<preset>/ (its own model_repo/).
recipe: install
	$(BIN)/shoprank train recipe --preset full

recipe-quick: install
	$(BIN)/shoprank train recipe --preset quick

# The full held-out report (docs/report/report.md + PNGs); the student row needs a trained student dir.
STUDENT ?= artifacts/recipe-full/student-adapted
report: install
	$(BIN)/shoprank eval --report docs/report --student $(STUDENT)

clean:
	rm -rf var .pytest_cache
