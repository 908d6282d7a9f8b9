"""The guests of a topology, one module per kind (qemu, netns) behind one interface (kind.py)."""
