"""faafo's OpenStack test bed: real keystone, placement, glance, nova (fake
hypervisor), neutron (ML2, agentless) and heat on 127.0.0.1.

Only the standard library is used here, so any Python 3.10+ can bring the bed
up; the services themselves run from their own virtualenv.
"""

from .control import down, status
from .errors import BedError, Unavailable
from .handle import Bed
from .lifecycle import ensure_up, running_bed, up

__all__ = ["Bed", "BedError", "Unavailable", "down", "ensure_up", "running_bed", "status", "up"]
