# The two commands of the README: `make demo` and `make test`. Both first set
# up what is missing on a Debian 12 machine (as root), idempotently.

VENV    := .venv
PYTHON  ?= python3
SDNVIRT := $(VENV)/bin/sdnvirt
PYTEST  := $(VENV)/bin/pytest

# Debian packages the lab and the tests use at run time.
DEBIAN_PACKAGES := openvswitch-switch iproute2 iputils-ping tcpdump graphviz \
	python3-venv

.PHONY: demo test bench setup debian-packages clean

demo: setup
	$(SDNVIRT) demo

test: setup
	$(VENV)/bin/ruff check sdnvirt tests bench
	$(PYTEST) -q tests

bench: setup
	$(VENV)/bin/python bench/converge.py

setup: debian-packages $(VENV)/.installed

debian-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) *.egg-info
