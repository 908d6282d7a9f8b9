"""The pipeline file is the single source of table numbers and priorities."""

import pytest

from sdnvirt.controller.fabric.pipeline import load_pipeline, parse_pipeline


def test_the_shipped_pipeline_loads_in_order():
    pipeline = load_pipeline()
    assert [t.name for t in pipeline.tables] == ["classify", "port_security", "arp_responder", "l2_lookup", "flood"]
    assert pipeline.table("classify").id == 0
    assert pipeline.table("port_security").priority("violation") < pipeline.table("port_security").priority("allow")


def test_goto_can_only_move_forward():
    with pytest.raises(ValueError, match="ascending"):
        parse_pipeline("tables:\n- {name: a, id: 10, purpose: x, priorities: {}}\n"
                       "- {name: b, id: 5, purpose: y, priorities: {}}\n")


def test_unknown_names_are_errors():
    pipeline = load_pipeline()
    with pytest.raises(KeyError):
        pipeline.table("acl")
    with pytest.raises(KeyError):
        pipeline.table("classify").priority("nope")
