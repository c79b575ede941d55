"""`inv` entry point: `fab`'s tasks plus the lab's (`inv lab.*`), this checkout's own tooling.

The lab lives in lab/, beside this file, and is not part of the slipway package:
`fab` (which loads fabfile's `ns`) never lists it and a pip install does not ship it.
"""

import fabfile
from lab import cli as lab

ns = fabfile.collection()
ns.add_collection(lab.namespace)
# Invoke hands a task its root collection's `slipway` settings whole, over its sub-collection's: the
# lab's defaults (`slipway.lab`) join the root's here.
ns.configure(lab.namespace.configuration())
