# The two commands: `make run` starts the whole system, `make test` runs the
# whole test suite against real PostgreSQL, Redis and Kafka it starts itself.

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)

.PHONY: run test lint bench demo backup restore screenshots venv clean

run: venv
	scripts/run.sh

test: lint
	scripts/test.sh $(ARGS)

# Style and types of the package code (mypy reads the settings, which need a key).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_SECRET_KEY=type-check $(VENV)/bin/mypy

# ONLY=main: the suite alone; ONLY=scaleout: the scale-out run alone (benchmarks/scaleout.py).
ONLY ?=
bench: venv
	ONLY="$(ONLY)" scripts/bench.sh

# The README's pictures of the web client, drawn again (docs/web-client.png, docs/web-client-phone.png).
screenshots: venv
	scripts/screenshots.sh

# Two new users chatting through the server `make run` started (URL=... for another).
URL ?= http://127.0.0.1:8000
demo: venv
	DJANGO_DEBUG=1 $(VENV)/bin/python manage.py chat_demo --url $(URL)

# A consistent dump of the PostgreSQL database (DATABASE_URL) with its manifest,
# into BACKUP_DIR (default backups/); restore one into an empty database.
backup: venv
	scripts/backup.sh create

restore: venv
	scripts/backup.sh restore "$(FILE)"

venv: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

clean:
	rm -rf .run
