"""rewriter: route a vendor's private images through a license proxy at render time."""

import time

__version__ = "0.1.0"

# When this process started (as near as Python lets us see it): --deadline counts from
# here for a process's first render, since start-up is part of what a host waits for.
STARTED = time.monotonic()
