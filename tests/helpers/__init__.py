"""What the tests share: labs built from topology files, talking to guests, frames on the wire,
and small fabrics for the unit tests."""
