# The commands README.md gives. STACK defaults to dev; a stack is named after
# its environment (`prod`, or `prod-eu`), which picks the policy config and the
# backup container.
STACK ?= dev
ENVIRONMENT := $(firstword $(subst -, ,$(STACK)))
# Extra flags for `pulumi up`, e.g. in CI: --yes --policy-pack policies
PULUMI_FLAGS ?=
VENV := venv
PY := $(VENV)/bin/python

.PHONY: setup test dev-up up preview policy docs bench release-config release switch-config switch rollback backup restore promote

$(VENV)/.installed: requirements.txt policies/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.txt -r policies/requirements.txt
	touch $@

setup: $(VENV)/.installed

test: setup
	$(PY) -m pytest -q tests

# Deploy the dev stack to this machine's Docker engine, state in ~/.pulumi
# (no cloud account). Needs PULUMI_CONFIG_PASSPHRASE set.
dev-up: setup
	pulumi login --local
	pulumi stack select --create dev --secrets-provider passphrase
	pulumi up --stack dev $(PULUMI_FLAGS)

up: setup
	pulumi up --stack $(STACK) $(PULUMI_FLAGS)

preview: setup
	pulumi preview --stack $(STACK) --policy-pack policies --policy-pack-config policies/config/$(ENVIRONMENT).json

# The policy pack over the program's mocked plan: no CLI, cloud or credentials
# (README "Policy pack"). FIRST_PREVIEW=1: generated secrets unknown. The policy
# config defaults to the file CI's `pulumi preview` passes for this stack.
POLICY_CONFIG ?= $(wildcard policies/config/$(ENVIRONMENT).json)
policy: setup
	$(PY) tools/policy_gate.py --stack $(STACK) $(if $(POLICY_CONFIG),--policy-config $(POLICY_CONFIG)) $(if $(FIRST_PREVIEW),--first-preview)

# Regenerate README's config reference from settings/model.py and settings/defaults.py.
docs: setup
	$(PY) -c "import re,sys; from settings import reference as r; t=open('README.md').read(); b=t.index(r.BEGIN)+len(r.BEGIN); e=t.index(r.END); open('README.md','w').write(t[:b]+'\n'+r.render()+'\n'+t[e:])"

# Time a full evaluation of the prod program under the SDK mocks.
bench: setup
	$(PY) bench/evaluate.py

# Blue/green (README "Blue/green releases"): release to the idle slot, then switch.
# The *-config targets only write Pulumi.<stack>.yaml (CI commits that first).
release-config: setup
	@test -n "$(SLOT)" -a -n "$(IMAGE)" || { echo "usage: make release STACK=prod SLOT=green IMAGE=registry/app:tag [REPLICAS=2]"; exit 2; }
	pulumi config set --stack $(STACK) --path 'slots.$(SLOT).image' '$(IMAGE)'
	pulumi config set --stack $(STACK) --path 'slots.$(SLOT).replicas' $(or $(REPLICAS),2)

release: release-config
	pulumi up --stack $(STACK) $(PULUMI_FLAGS)

switch-config: setup
	@test -n "$(SLOT)" || { echo "usage: make switch STACK=prod SLOT=green"; exit 2; }
	pulumi config set --stack $(STACK) activeSlot $(SLOT)

switch: switch-config
	pulumi up --stack $(STACK) $(PULUMI_FLAGS)

# Rolling back is switching back to the slot that was live before.
rollback: switch

# Backups (README "Backups and restores"). They run in the stack's `<env>-backup`
# container: point DOCKER_HOST at the stack's host first (ssh://deploy@host for
# stage and prod; dev is this machine). STACK=prod backs up prod now:
BACKUP_CONTAINER = $(ENVIRONMENT)-backup
backup:
	docker exec $(BACKUP_CONTAINER) /opt/shia-backup/bin/backup all --reason manual

# make restore STACK=prod SERVICE=postgres|redis|qdrant|minio [BACKUP=<set name>|latest] [DATABASE=<name>]
# BACKUP defaults to latest; a set that is only off-site is fetched first.
# DATABASE (postgres only): restore into that database instead of the live one.
restore:
	@test -n "$(SERVICE)" || { echo "usage: make restore STACK=prod SERVICE=postgres|redis|qdrant|minio [BACKUP=<set>|latest] [DATABASE=<name>]"; exit 2; }
	docker exec $(BACKUP_CONTAINER) /opt/shia-backup/bin/restore $(SERVICE) $(or $(BACKUP),latest) $(if $(DATABASE),--database $(DATABASE))

# Promote approved documents, their chunks and vectors (README "Promoting
# documents from stage to prod"). Connections come from the PROMOTE_* variables
# in the environment; DRY_RUN=1 only reports what would move.
promote: setup
	$(PY) -m tools.promote --from $(or $(FROM),stage) --to $(or $(TO),prod) $(if $(SINCE),--since $(SINCE)) $(if $(DRY_RUN),--dry-run)
