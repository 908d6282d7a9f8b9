"""The controller process: `python -m sdnvirt.controller --lab DIR`.

`lab up` starts it with a pid file and a log; it runs until SIGTERM. It keeps
nothing a restart would miss: desired state (and what it decided: where each
port is active, the migrations) is in the northbound database, the rest
comes from each host's OVSDB and libvirtd, and the flows already on the
switches are read back.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import threading
from pathlib import Path

from os_ken import cfg

from sdnvirt.api.server import ApiServer, create_app
from sdnvirt.controller.endpoints import lab_endpoints
from sdnvirt.controller.fabric.pipeline import load_pipeline
from sdnvirt.controller.service import READY_TIMEOUT, Controller
from sdnvirt.lab.northbound import northbound_remote
from sdnvirt.lab.paths import LabPaths
from sdnvirt.northbound.database import Northbound, NorthboundError

LOG = logging.getLogger("sdnvirt.controller")
GIL_SWITCH_INTERVAL = 0.0002  # seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdnvirt.controller")
    parser.add_argument("--lab", type=Path, required=True, help="the lab's folder")
    parser.add_argument("--northbound", metavar="REMOTES",
                        help="the northbound database, e.g. tcp:IP:PORT,tcp:IP:PORT,tcp:IP:PORT for a Raft "
                             "cluster, whose leader it follows (default: the lab's own ovsdb-server)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("os_ken").setLevel(logging.WARNING)

    # Replies from switches wake threads waiting on them; a waking thread may wait this
    # long for the interpreter lock, which a switch-over cannot afford (default 5 ms).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    paths = LabPaths(args.lab)
    northbound = Northbound(args.northbound or northbound_remote(paths))
    try:
        northbound.connect()
    except NorthboundError as error:
        print(error, file=sys.stderr)
        return 1
    topology = northbound.topology()
    if topology is None:
        print(f"the northbound database {northbound.remote} holds no topology", file=sys.stderr)
        return 1
    # os-ken's own TCP listener is unused in a lab (bridges come in on the
    # unix socket); it binds inside the controller's namespace only.
    cfg.CONF(args=["--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", "6653"], project="os_ken")

    controller = Controller(northbound, lambda t: lab_endpoints(paths, t), load_pipeline(), paths.openflow_socket)
    api = ApiServer(create_app(controller), paths.api_socket)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    controller.start()
    api.start()
    controller.fabric.ready.wait(READY_TIMEOUT)
    # What start-up made lives as long as the process: the collector need never scan it
    # again. A full collection of it took 150 ms here, long enough to miss a switch-over.
    gc.collect()
    gc.freeze()
    LOG.info("controller for %s running", topology.name)
    stop.wait()
    LOG.info("stopping")
    api.stop()
    controller.stop()
    return 0
