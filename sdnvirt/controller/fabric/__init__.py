"""The OpenFlow side of the controller: the pipeline, the flow compiler, and keeping every bridge in sync."""
