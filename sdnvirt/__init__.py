"""sdnvirt: a migration-aware SDN controller for KVM/QEMU hosts."""

import warnings

# Open vSwitch's Python library imports eventlet (only to see whether it is
# monkey-patched; sdnvirt never patches), which then warns about itself.
warnings.filterwarnings("ignore", message="\nEventlet is deprecated")
