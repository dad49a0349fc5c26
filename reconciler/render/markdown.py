"""Markdown building blocks for pull-request comments and issues: escaping, fences, a size budget.

GitHub refuses a comment or issue body over 65,536 characters. :class:`Comment`
collects blocks while keeping room for a closing note; a block that does not
fit is refused, and the caller summarises what is left.
"""

from __future__ import annotations

import re

GITHUB_COMMENT_LIMIT = 65_536
FOOTER_ROOM = 1_000  # kept free for the closing note and "... and N more" lines
_BACKTICKS = re.compile(r"`+")


def cell(text: str, limit: int = 600) -> str:
    """``text`` safe inside a table cell: one line, pipes escaped, no raw HTML, at most ``limit`` chars."""
    one = " ".join(text.split())
    if len(one) > limit:
        one = one[: limit - 1] + "…"
    return one.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def text(value: str, limit: int = 2_000) -> str:
    """Plain prose from values: no raw HTML, at most ``limit`` chars."""
    return cell(value, limit).replace("\\|", "|")


def fence(lines: list[str], language: str = "") -> str:
    """A code block whose fence is longer than any run of backticks inside it."""
    longest = max((len(m.group()) for line in lines for m in _BACKTICKS.finditer(line)), default=0)
    mark = "`" * max(3, longest + 1)
    return "\n".join([f"{mark}{language}", *lines, mark])


class Comment:
    """Blocks of markdown that together stay under ``limit`` characters (newlines included)."""

    def __init__(self, limit: int = GITHUB_COMMENT_LIMIT) -> None:
        self.limit = limit
        self.blocks: list[str] = []
        self.size = 0
        self.summarised = False

    def room(self) -> int:
        return self.limit - FOOTER_ROOM - self.size

    def fits(self, block: str) -> bool:
        return len(block) + 1 <= self.room()

    def add(self, block: str) -> bool:
        """Append ``block`` if it fits; otherwise note that the comment was summarised."""
        if not self.fits(block):
            self.summarised = True
            return False
        self.blocks.append(block)
        self.size += len(block) + 1
        return True

    def force(self, block: str) -> None:
        """Append a short closing block (it uses the kept room)."""
        self.blocks.append(block[: FOOTER_ROOM - 10])
        self.size += len(self.blocks[-1]) + 1

    def items(self, lines: list[str], more: str = "... and {n} more") -> int:
        """Add ``lines`` one by one while they fit; then one ``more`` line. Returns how many were added."""
        for i, line in enumerate(lines):
            if not self.add(line):
                self.force(more.format(n=len(lines) - i))
                return i
        return len(lines)

    def render(self) -> str:
        out = "\n".join(self.blocks) + "\n"
        if len(out) > self.limit:  # cannot happen with the kept room, but never post a refused comment
            out = out[: self.limit - 40] + "\n\n_(truncated: comment size limit)_\n"
        return out
