import logging
import os
import warnings

# Open vSwitch's Python library imports eventlet (only to see whether it is
# monkey-patched; sdnvirt never patches), which warns about its own deprecation.
warnings.filterwarnings("ignore", message="\nEventlet is deprecated")

from sdnvirt.controller.daemon import main  # noqa: E402

code = main()
logging.shutdown()
# os-ken's hub threads are not daemons and have no way to be stopped; the
# process is done once the controller has shut its parts down.
os._exit(code)
