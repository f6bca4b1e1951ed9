"""The version written in include/losskit.h (LK_VERSION_MAJOR, _MINOR, _PATCH), read by setup.py
when a package is built and by a source checkout at import. No imports beyond the standard
library: setup.py loads this file on its own, without the package (which loads the library)."""

from __future__ import annotations

import re
from pathlib import Path


def header_version(header: Path) -> str:
    """MAJOR.MINOR.PATCH from the LK_VERSION_* macros of a losskit.h; ValueError if one is missing."""
    text = Path(header).read_text()
    parts = []
    for macro in ("LK_VERSION_MAJOR", "LK_VERSION_MINOR", "LK_VERSION_PATCH"):
        found = re.search(rf"^#define {macro}\s+(\d+)\s*$", text, re.M)
        if not found:
            raise ValueError(f"{header} does not define {macro}")
        parts.append(found.group(1))
    return ".".join(parts)
