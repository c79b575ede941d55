"""The one validated model of a deployment: inventory YAML plus secrets .env.

`load` reads `inventories/NAME.yaml` and `inventories/NAME.env`, validates both
and returns a frozen `Deployment`, or raises `ConfigError` listing every
problem, each as `FILE: KEY.PATH: found X; expected Y`. Nothing here touches
the network, so bad input is refused before any SSH connection opens.
"""

from .app import Service
from .inventory import Inventory
from .loading import Deployment, load
from .server import Host

__all__ = ["Deployment", "Host", "Inventory", "Service", "load"]
