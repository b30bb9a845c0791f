"""The rule of a name that users give (a tag, a project, a metadata key): no character that a file or a reader
downstream takes for a line break or a control. Tag names become lines of `labels.txt` (read with splitlines, which
also breaks at U+001C..U+001E, U+0085, U+2028 and U+2029) and lines of the manifest; so such a name is refused at the
door rather than stored in a form that something later splits or misreads."""

from __future__ import annotations

import re

# C0 controls (tab and line feed included), DEL, C1 controls (U+0085, next line, included), line and paragraph
# separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def name_problem(name: str) -> str | None:
    """Why `name` cannot name anything, or None."""
    found = _UNSAFE.search(name)
    if found:
        return (f"holds the control or line-separator character U+{ord(found.group()):04X} at position "
                f"{found.start()}")
    return None
