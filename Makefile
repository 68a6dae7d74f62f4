# The commands README.md and docs/ give; `make help` lists them. STACK defaults
# to dev; a stack is named after its environment (`prod`, or `prod-eu`), which
# picks the policy config and the backup container.
STACK ?= dev
ENVIRONMENT := $(firstword $(subst -, ,$(STACK)))
# Extra flags for `pulumi up`, e.g. in CI: --yes --policy-pack policies
PULUMI_FLAGS ?=
VENV := venv
PY := $(VENV)/bin/python
# Every pulumi command of this Makefile runs with the stack's policy pack, as CI does.
PACK := --policy-pack policies --policy-pack-config policies/config/$(ENVIRONMENT).json
PREREQUISITES := python3 tools/prerequisites.py
# The dev stacks' state: exported to this Makefile's commands only, so `pulumi
# login` is never run and any other login (Pulumi Cloud for other projects)
# stays as it is; file://~ keeps it in ~/.pulumi. A PULUMI_BACKEND_URL of your
# own wins. Stage and prod use yours (docs/setup.md).
DEV_BACKEND_URL ?= file://~
ifeq ($(ENVIRONMENT),dev)
export PULUMI_BACKEND_URL ?= $(DEV_BACKEND_URL)
endif

.DEFAULT_GOAL := help
.PHONY: help setup test e2e images dev-up up preview policy docs bench release-config release switch-config switch rollback backup restore promote

help: ## List every target with one line each
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-z][a-z0-9-]*:.*## / {printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: requirements.txt policies/requirements.txt
	@$(PREREQUISITES) test
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.txt -r policies/requirements.txt
	touch $@

setup: $(VENV)/.installed ## Create venv/ from requirements.txt (the other targets do it when needed)

test: setup ## Run every test (mocks and real tools); the command CI runs
	$(PY) -m pytest -q -n auto --dist loadfile tests

images: ## Build the local images the real-engine tests run (cached by content; needs Docker, mmdebstrap)
	python3 tests/e2e/images/build.py

e2e: setup images ## The real-engine tests: the plan applied to this machine's Docker daemon
	$(PY) -m pytest -q tests/e2e

dev-up: ## Deploy the dev stack to this machine's Docker engine (needs PULUMI_CONFIG_PASSPHRASE)
	@$(PREREQUISITES) dev-up
	@$(MAKE) --no-print-directory setup
	pulumi stack select --create dev --secrets-provider passphrase
	pulumi up --stack dev $(PACK) $(PULUMI_FLAGS)

up: ## pulumi up for STACK, with the policy pack
	@$(PREREQUISITES) pulumi
	@$(MAKE) --no-print-directory setup
	pulumi up --stack $(STACK) $(PACK) $(PULUMI_FLAGS)

preview: ## pulumi preview for STACK with the policy pack, as CI runs it
	@$(PREREQUISITES) pulumi
	@$(MAKE) --no-print-directory setup
	pulumi preview --stack $(STACK) $(PACK)

# FIRST_PREVIEW=1: generated secrets unknown. The policy config defaults to the
# file CI's `pulumi preview` passes for this stack.
POLICY_CONFIG ?= $(wildcard policies/config/$(ENVIRONMENT).json)
policy: setup ## The policy pack over STACK's mocked plan, no CLI or credentials [FIRST_PREVIEW=1]
	$(PY) tools/policy_gate.py --stack $(STACK) $(if $(POLICY_CONFIG),--policy-config $(POLICY_CONFIG)) $(if $(FIRST_PREVIEW),--first-preview)

docs: setup ## Regenerate docs/configuration.md's reference and docs/operations.md's table
	$(PY) -m settings.reference --write docs/configuration.md
	cd tests && PYTHONPATH=..:../tools ../$(PY) -m engine.operations --write ../docs/operations.md

bench: setup ## Time the prod program under the mocks; count kept-alive requests lost to switches and reloads
	$(PY) bench/evaluate.py
	$(PY) bench/router_keepalive.py

# Blue/green (docs/blue-green.md). The *-config targets only write
# Pulumi.<stack>.yaml (CI commits that first).
# REPLICAS defaults to the live slot's: the released slot takes all traffic after a switch.
release-config: setup ## Write SLOT's IMAGE [REPLICAS] into Pulumi.STACK.yaml, nothing else
	@test -n "$(SLOT)" -a -n "$(IMAGE)" || { echo "usage: make release STACK=prod SLOT=green IMAGE=registry/app:tag [REPLICAS=n]"; exit 2; }
	@$(PREREQUISITES) pulumi
	pulumi config set --stack $(STACK) --path 'slots.$(SLOT).image' '$(IMAGE)'
	replicas='$(REPLICAS)'; \
	[ -n "$$replicas" ] || replicas=$$(pulumi config get --stack $(STACK) --path "slots.$$(pulumi config get --stack $(STACK) activeSlot).replicas") || exit 1; \
	pulumi config set --stack $(STACK) --path 'slots.$(SLOT).replicas' "$$replicas"

release: release-config ## Release IMAGE to the idle SLOT of STACK (pulumi up, with the policy pack)
	pulumi up --stack $(STACK) $(PACK) $(PULUMI_FLAGS)

switch-config: setup ## Write activeSlot SLOT into Pulumi.STACK.yaml, nothing else
	@test -n "$(SLOT)" || { echo "usage: make switch STACK=prod SLOT=green (make rollback: SLOT=the slot that was live before)"; exit 2; }
	@$(PREREQUISITES) pulumi
	pulumi config set --stack $(STACK) activeSlot $(SLOT)

switch: switch-config ## Send STACK's traffic to SLOT (pulumi up, with the policy pack)
	pulumi up --stack $(STACK) $(PACK) $(PULUMI_FLAGS)

rollback: switch ## make switch back: SLOT=the slot that was live before

# Backups (docs/backups.md) run in the stack's `<env>-backup` container: point
# DOCKER_HOST at the stack's host first (ssh://deploy@host for stage and prod).
BACKUP_CONTAINER = $(ENVIRONMENT)-backup
backup: ## Back up every data service of STACK now
	docker exec $(BACKUP_CONTAINER) /opt/shia-backup/bin/backup all --reason manual

# PostgreSQL comes back whole, to a point in time (TARGET: latest, a restore
# point such as pre-migration-blue-..., or a UTC time "2026-11-30 03:14:00"),
# stopped and started from the host; the others online, from a restic snapshot
# (SNAPSHOT: latest or an id; OFFSITE=1 reads the off-site repository).
restore: ## Restore SERVICE=postgres TARGET=<point|time|latest>, or SERVICE=redis|qdrant|minio [SNAPSHOT=<id>] [OFFSITE=1], of STACK
	@case "$(SERVICE)" in postgres) test -n "$(TARGET)" ;; redis|qdrant|minio) ;; *) false ;; esac || { \
	  echo "usage: make restore STACK=prod SERVICE=postgres TARGET=<restore point|UTC time|latest>"; \
	  echo "       make restore STACK=prod SERVICE=redis|qdrant|minio [SNAPSHOT=<id>|latest] [OFFSITE=1]"; exit 2; }
ifeq ($(SERVICE),postgres)
	POSTGRES_CONTAINER=$(ENVIRONMENT)-postgres BACKUP_CONTAINER=$(BACKUP_CONTAINER) \
	  sh components/backups/scripts/postgres-restore.sh "$(TARGET)"
else
	docker exec $(BACKUP_CONTAINER) /opt/shia-backup/bin/restore $(SERVICE) $(or $(SNAPSHOT),latest) $(if $(OFFSITE),--offsite)
endif

# Connections come from the PROMOTE_* variables (docs/promotion.md).
promote: setup ## Copy approved documents FROM=stage TO=prod [SINCE=date] [DRY_RUN=1]
	$(PY) -m tools.promote --from $(or $(FROM),stage) --to $(or $(TO),prod) $(if $(SINCE),--since $(SINCE)) $(if $(DRY_RUN),--dry-run)
