"""Reading roadmap.md's text: what every tick does, apart from parsing it (oxi_core/roadmap.py),
which a tick with nothing to ingest or dispatch never needs."""

from __future__ import annotations

from pathlib import Path

from oxi_core.errors import RoadmapError


def read_roadmap_text(path: Path) -> str:
    """The roadmap's text; RoadmapError, saying how to fix it, when it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise RoadmapError(
            f"no roadmap at {path}",
            hint="create roadmap.md (docs/roadmap-format.md shows the format), or point the "
                 "adapter's `roadmap` kwarg at yours",
        ) from error
    except IsADirectoryError as error:
        raise RoadmapError(f"{path} is a folder, not a roadmap file",
                           hint="point the adapter's `roadmap` kwarg at the markdown file") \
            from error
    except OSError as error:
        raise RoadmapError(f"cannot read {path}: {error.strerror or error}",
                           hint="check that the file exists and is readable by this user") \
            from error
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RoadmapError(f"{path} is not UTF-8 text (bad byte at offset {error.start})",
                           hint="re-save the file as UTF-8") from error
