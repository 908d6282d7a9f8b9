"""The controller process: `python -m sdnvirt.controller --northbound REMOTES --hosts FILE ...`.

`lab up` starts it with a pid file and a log; it runs until SIGTERM, then lets
every northbound write land (for a few seconds at most) before it ends. It knows
nothing of labs: a lab is one host inventory and one database among others. It keeps
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

from netaddr import AddrFormatError, IPAddress
from os_ken import cfg
from ovs.stream import Stream

from sdnvirt.controller.api.server import ApiServer, create_app
from sdnvirt.controller.api.token import TokenError, read_token
from sdnvirt.controller.collector import tune_collector
from sdnvirt.controller.fabric.listener import OpenFlowListener, switch_tls
from sdnvirt.controller.fabric.pipeline import load_pipeline
from sdnvirt.controller.hosts import READY_TIMEOUT
from sdnvirt.controller.inventory import InventoryError, read_inventory
from sdnvirt.controller.wiring import Controller
from sdnvirt.northbound.database import Northbound, NorthboundError

LOG = logging.getLogger("sdnvirt.controller")
GIL_SWITCH_INTERVAL = 0.0002  # seconds
# Seconds the northbound writes may take to land after SIGTERM: well inside the 10 s a
# lab (or an init system) gives the process before SIGKILL.
DRAIN_TIMEOUT = 5.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdnvirt.controller")
    parser.add_argument("--northbound", metavar="REMOTES", required=True,
                        help="the northbound database: unix:PATH, or tcp:IP:PORT,tcp:IP:PORT,tcp:IP:PORT for "
                             "a Raft cluster, whose leader it follows")
    parser.add_argument("--hosts", type=Path, required=True, metavar="FILE",
                        help="the host inventory: how to reach each host (see controller/inventory.py)")
    parser.add_argument("--openflow-socket", type=Path, help="take bridges on this unix socket")
    parser.add_argument("--api-socket", type=Path, help="serve the API on this unix socket")
    parser.add_argument("--private-key", type=Path, help="the controller's SSL private key (ovs-pki)")
    parser.add_argument("--certificate", type=Path, help="the controller's SSL certificate")
    parser.add_argument("--ca-cert", type=Path, help="the authority that signed the hosts' certificates")
    parser.add_argument("--openflow-listen", type=_address, metavar="IP:PORT",
                        help="take bridges on TCP, or on SSL with the certificate options (each bridge then "
                             "must show the certificate the host inventory names for its host)")
    parser.add_argument("--api-listen", type=_address, metavar="IP:PORT",
                        help="serve the API on TCP too (HTTPS with the certificate options); needs --token-file")
    parser.add_argument("--token-file", type=Path, help="the token the API on TCP asks for")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    args = parser.parse_args(argv)
    ssl = [args.private_key, args.certificate, args.ca_cert]
    if any(ssl) and not all(ssl):
        parser.error("SSL needs all of --private-key, --certificate and --ca-cert")
    if not (args.api_socket or args.api_listen):
        parser.error("give the API somewhere to listen: --api-socket and/or --api-listen")
    if not (args.openflow_socket or args.openflow_listen):
        parser.error("give bridges somewhere to connect: --openflow-socket and/or --openflow-listen")
    if args.api_listen and not args.token_file:
        parser.error("--api-listen needs --token-file: the API on TCP refuses requests without the token")
    token = None
    if args.api_listen:
        try:
            token = read_token(args.token_file)
        except TokenError as error:
            parser.error(str(error))
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("os_ken").setLevel(logging.WARNING)

    # Replies from switches wake threads waiting on them; a waking thread may wait this
    # long for the interpreter lock, which a switch-over cannot afford (default 5 ms).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    tune_collector()
    if args.private_key:  # every OVSDB connection (ssl: remotes) shows and checks these
        Stream.ssl_set_private_key_file(str(args.private_key))
        Stream.ssl_set_certificate_file(str(args.certificate))
        Stream.ssl_set_ca_cert_file(str(args.ca_cert))
    northbound = Northbound(args.northbound)
    try:
        listeners = _openflow_listeners(args)
        read_inventory(args.hosts)
        northbound.connect()
    except (InventoryError, NorthboundError) as error:
        print(error, file=sys.stderr)
        return 1
    except OSError as error:  # ssl.SSLError too
        print(f"the controller's certificate, key or authority: {error}", file=sys.stderr)
        return 1
    topology = northbound.topology()
    if topology is None:
        print(f"the northbound database {northbound.remote} holds no topology", file=sys.stderr)
        return 1
    cfg.CONF(args=[], project="os_ken")  # os-ken's defaults for each switch's connection (timeouts, echo)

    controller = Controller(northbound, lambda: read_inventory(args.hosts), load_pipeline(), listeners)
    servers = [ApiServer(create_app(controller), socket_path=args.api_socket)] if args.api_socket else []
    if args.api_listen:
        servers.append(ApiServer(create_app(controller, token), host=args.api_listen[0], port=args.api_listen[1],
                                 certificate=args.certificate, private_key=args.private_key))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        controller.start()
        for server in servers:
            server.start()
    except OSError as error:  # a socket to listen on is taken, say
        print(f"the controller could not start: {error}", file=sys.stderr)
        controller.stop()
        return 1
    controller.fabric.wait_ready(READY_TIMEOUT)
    # What start-up made lives as long as the process: the collector need never scan it
    # again. A full collection of it took 150 ms here, long enough to miss a switch-over.
    gc.collect()
    gc.freeze()
    LOG.info("controller for %s running", topology.name)
    stop.wait()
    LOG.info("stopping")
    for server in servers:
        server.stop()
    controller.stop()
    LOG.info("stopped; %d northbound writes to land", controller.store.writer.pending)
    unwritten = controller.store.drain(DRAIN_TIMEOUT)
    if unwritten:
        LOG.error("stopped with %d northbound writes not written within %.0fs: %s", len(unwritten), DRAIN_TIMEOUT,
                  "; ".join(unwritten))
    else:
        LOG.info("every northbound write landed")
    northbound.close()
    return 0


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        return str(IPAddress(host)), int(port)
    except (ValueError, AddrFormatError):
        raise argparse.ArgumentTypeError(f"expected IP:PORT, got {text!r}") from None


def _openflow_listeners(args) -> list[OpenFlowListener]:
    """Where bridges connect: the unix socket, and TCP (SSL with the certificate options)."""
    listeners = [OpenFlowListener(args.openflow_socket)] if args.openflow_socket else []
    if args.openflow_listen:
        tls = switch_tls(args.private_key, args.certificate, args.ca_cert) if args.private_key else None
        listeners.append(OpenFlowListener(args.openflow_listen, tls))
    return listeners
