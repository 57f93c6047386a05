"""trustbench: an MLPerf-style benchmark suite for trustworthy and sustainable ML.

The core (this package) is shared by every pillar and imports no pillar and no heavy library
at import time: ``import trustbench`` stays fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
