"""The data files sdnvirt reads: the pipeline, the northbound schema, the demo's topology.

They are edited where a reader looks for them, at the top of the repository
(flows/, ovs/, topologies/); sdnvirt/data holds links to them, which a built
wheel turns into copies, so an installed sdnvirt finds them in the same place.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().with_name("data")
PIPELINE = DATA / "pipeline.yaml"
NORTHBOUND_SCHEMA = DATA / "sdnvirt.ovsschema"
DEMO_TOPOLOGY = DATA / "demo.yaml"
