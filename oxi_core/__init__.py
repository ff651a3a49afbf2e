"""oxi: run coding agents on a git repository unattended.

The public API for plugin authors lives here: ``hookimpl``, the protocols registered classes
implement, the value types they exchange, and the errors.
"""

from __future__ import annotations

__version__ = "0.2.0"
