# The observability stack in one command. `make help` lists every target.
.DEFAULT_GOAL := help
SHELL := /bin/bash

COMPOSE ?= docker compose
# Tests and tools use the project's virtual environment when there is one (.ci/run creates it).
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
HOST_PYTHON ?= python3
STACK := $(HOST_PYTHON) compose/stack.py --compose "$(COMPOSE)"
WAIT_TIMEOUT ?= 900

.PHONY: help up down clean logs ps test test-integration lint backup restore bench dashboards env doctor chart migrate

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "; printf "Usage: make <target>\n\n"} \
		/^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-17s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

env: ## Create .env with generated secrets if it is missing (never overwrites)
	@command -v $(HOST_PYTHON) >/dev/null || { echo "[stack] ERROR: python3 is required on the host"; exit 1; }
	@$(STACK) env

doctor: env ## Check Docker, the engine, Compose v2 and .env before starting anything
	@$(STACK) doctor

up: doctor ## Create secrets, build, start everything, wait until healthy, print URLs
	@mkdir -p "$$(grep -E '^BACKUP_DIR=' .env | cut -d= -f2- || echo ./backups)"
	@# Compose itself waits for the one-shots a service depends on; on failure, name the service that broke.
	$(COMPOSE) up --detach --build --remove-orphans || { $(STACK) wait --timeout 0; exit 1; }
	@$(STACK) wait --timeout $(WAIT_TIMEOUT)
	@# Grafana reads its InfluxDB 2 token at start: restart what holds a token influxdb2-init just replaced.
	@$(STACK) tokens --timeout $(WAIT_TIMEOUT)
	@$(STACK) info

down: ## Stop and remove the containers (data volumes are kept)
	$(COMPOSE) down

clean: ## Remove containers AND all data volumes, after confirmation (backups in BACKUP_DIR stay)
	@read -r -p "This deletes every InfluxDB 2/3 and Grafana volume of this stack. Type 'yes' to go on: " answer; \
		[ "$$answer" = "yes" ] || { echo "[stack] nothing removed"; exit 1; }
	$(COMPOSE) down --volumes --remove-orphans

logs: ## Follow the logs of every service (SERVICE=name for one)
	$(COMPOSE) logs --follow --tail 200 $(SERVICE)

ps: ## Show the services and their health
	$(COMPOSE) ps --all

lint: ## ruff over the whole repository
	$(PYTHON) -m ruff check .

test: lint ## Run the tests (the command CI runs); Docker-only tests skip with their reason when no engine runs
	$(PYTHON) -m pytest

test-integration: ## Run only the whole-stack tests: Docker, or native servers (INFLUXD_BIN, INFLUXDB3_BIN)
	$(PYTHON) -m pytest tests/integration -rs

backup: ## Take a backup set now (in the running backup container); prints the set name
	$(COMPOSE) exec backup backup now

# compose/stack.py restore: pauses the scheduled backups and ingest, resolves SET once and checks .env's credentials
# against it and takes a pre-restore set (servers still running), stops what is replaced, restores, starts again.
restore: ## Restore a set: make restore SET=<name|latest> [ONLY=influxdb2|influxdb3|grafana] [BUCKET=b NEW_BUCKET=n]
	@[ -n "$(SET)" ] || { echo "[stack] usage: make restore SET=<set name|latest> [ONLY=influxdb2|influxdb3|grafana]" \
		"[BUCKET=<bucket> NEW_BUCKET=<name>] [ACCEPT_CREDENTIAL_MISMATCH=yes] [PRE_RESTORE_BACKUP=no]"; \
		$(COMPOSE) run --rm --no-deps backup list; exit 1; }
	@$(STACK) restore --set "$(SET)" --timeout $(WAIT_TIMEOUT) $(if $(ONLY),--only $(ONLY)) \
		$(if $(BUCKET),--bucket "$(BUCKET)") $(if $(NEW_BUCKET),--new-bucket "$(NEW_BUCKET)") \
		$(if $(filter yes,$(ACCEPT_CREDENTIAL_MISMATCH)),--accept-credential-mismatch) \
		$(if $(filter no,$(PRE_RESTORE_BACKUP)),--no-pre-restore-backup)

migrate: ## Move a bucket from InfluxDB 2 to 3, verified: make migrate BUCKET=b [DATABASE=d] [ARGS="--resume"]
	@[ -n "$(BUCKET)" ] || { echo "[stack] usage: make migrate BUCKET=<InfluxDB 2 bucket> [DATABASE=<InfluxDB 3 database>]" \
		"[ARGS=\"--resume --start 2024-01-01 --measurement m ...\"] (README, \"Move from InfluxDB 2 to 3\")"; exit 1; }
	@# The ingest's own token may only write; migrate reads InfluxDB 2, so it runs with the operator token from .env
	@# (passed by name, never on a command line).
	INFLUXDB2_TOKEN="$$(grep -E '^INFLUXDB2_ADMIN_TOKEN=' .env | cut -d= -f2-)" $(COMPOSE) exec -e INFLUXDB2_TOKEN \
		-e INFLUXDB2_TOKEN_FILE= ingest python -m ingest migrate --bucket "$(BUCKET)" \
		$(if $(DATABASE),--database "$(DATABASE)") $(ARGS)

bench: ## Run the benchmarks in benchmarks/ (figures and ratio on each one's last line)
	@set -e; for bench in benchmarks/bench_*.py; do echo "== $$bench"; $(PYTHON) "$$bench"; done

chart: ## Save the forecast chart (it needs the InfluxDB 3 token) as peyton-chart.html to open in a browser
	@$(STACK) chart

dashboards: ## Regenerate the dashboards and alert rules (grafana/) from the Python and .env's ALERT_* settings
	$(PYTHON) -m grafana.generate $(if $(wildcard .env),--env-file .env)
