# The commands README.md gives. STACK defaults to dev.
STACK ?= dev
VENV := venv
PY := $(VENV)/bin/python

.PHONY: setup test dev-up up preview docs bench release switch rollback

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
	pulumi up --stack dev

up: setup
	pulumi up --stack $(STACK)

preview: setup
	pulumi preview --stack $(STACK) --policy-pack policies

# Regenerate README's config reference from settings/model.py and settings/defaults.py.
docs: setup
	$(PY) -c "import re,sys; from settings import reference as r; t=open('README.md').read(); b=t.index(r.BEGIN)+len(r.BEGIN); e=t.index(r.END); open('README.md','w').write(t[:b]+'\n'+r.render()+'\n'+t[e:])"

# Time a full evaluation of the prod program under the SDK mocks.
bench: setup
	$(PY) bench/evaluate.py

# Blue/green (README "Blue/green releases"): release to the idle slot, then switch.
release: setup
	@test -n "$(SLOT)" -a -n "$(IMAGE)" || { echo "usage: make release STACK=prod SLOT=green IMAGE=registry/app:tag [REPLICAS=2]"; exit 2; }
	pulumi config set --stack $(STACK) --path 'slots.$(SLOT).image' '$(IMAGE)'
	pulumi config set --stack $(STACK) --path 'slots.$(SLOT).replicas' $(or $(REPLICAS),2)
	pulumi up --stack $(STACK)

switch: setup
	@test -n "$(SLOT)" || { echo "usage: make switch STACK=prod SLOT=green"; exit 2; }
	pulumi config set --stack $(STACK) activeSlot $(SLOT)
	pulumi up --stack $(STACK)

# Rolling back is switching back to the slot that was live before.
rollback: switch
