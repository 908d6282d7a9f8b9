import logging
import os

from sdnvirt.controller.daemon import main

code = main()
logging.shutdown()
# os-ken's hub threads are not daemons and have no way to be stopped; the
# process is done once the controller has shut its parts down.
os._exit(code)
