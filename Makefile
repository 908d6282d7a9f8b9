# The two commands of the README: `make demo` and `make test`. Both first set
# up what is missing on a Debian 12 machine (as root), idempotently.

VENV    := .venv
PYTHON  ?= python3
SDNVIRT := $(VENV)/bin/sdnvirt
PYTEST  := $(VENV)/bin/pytest

# Debian packages the lab and the tests use. libvirt-dev and pkg-config build
# libvirt-python; kmod's depmod orders the guest's kernel modules; gcc and
# libc6-dev compile the guest image's UDP tool (statically); ethtool turns a
# netns guest's checksum offload off; iperf3 measures the data plane
# (bench/throughput.py). Deliberately not libvirt-daemon-system: it would
# start a libvirtd (and its default network) in the root namespace; each lab
# host runs its own. ovn-central and ovn-host are the baseline the migration
# benchmark and its test measure.
DEBIAN_PACKAGES := openvswitch-switch iproute2 iputils-ping tcpdump graphviz \
	python3-venv qemu-system-x86 libvirt-daemon libvirt-daemon-driver-qemu \
	libvirt-clients libvirt-dev pkg-config kmod ovn-central ovn-host ethtool gcc libc6-dev iperf3

.PHONY: demo test bench setup debian-packages libvirt-qemu-user clean

demo: setup
	$(SDNVIRT) demo

test: setup
	$(VENV)/bin/ruff check sdnvirt tests bench
	$(PYTEST) -q --durations=20 tests  # the slowest tests: make test must stay under 30 minutes on 2 cores

bench: setup
	$(VENV)/bin/python bench/converge.py
	$(VENV)/bin/python bench/boot.py
	$(VENV)/bin/python bench/migrate.py
	$(VENV)/bin/python bench/scale.py
	$(VENV)/bin/python bench/throughput.py

setup: debian-packages libvirt-qemu-user $(VENV)/.installed

# The packages' own services are kept from starting while they install (a
# policy-rc.d that says no, unless the machine has one): every daemon the lab
# needs runs inside its namespaces, none in the root namespace.
debian-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
			guard=/usr/sbin/policy-rc.d; printf '#!/bin/sh\nexit 101\n' > $$guard; chmod 755 $$guard; \
		fi; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
		status=$$?; [ -z "$$guard" ] || rm -f $$guard; exit $$status; \
	fi

# libvirt's QEMU driver refuses to start without its system user (which
# libvirt-daemon-system would have made).
libvirt-qemu-user:
	@getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
	@getent passwd libvirt-qemu >/dev/null || useradd --system --no-create-home \
		--home-dir /var/lib/libvirt --shell /usr/sbin/nologin -g libvirt-qemu libvirt-qemu

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) *.egg-info
