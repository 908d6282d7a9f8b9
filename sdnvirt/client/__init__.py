"""The client side of the controller's REST API: what the CLI, the lab, benchmarks and tests talk to it with."""
