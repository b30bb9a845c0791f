"""The rules of an image's metadata (free key/value pairs), Custom Vision's, the same at upload and on update: at
most MAX_METADATA pairs an image, keys of 1 to MAX_KEY characters that name_problem accepts, values of at most
MAX_VALUE characters (the columns of tables.ImageMetadata, so that PostgreSQL never refuses what SQLite keeps)."""

from __future__ import annotations

from kubevision.core.labelstore.errors import StoreError
from kubevision.core.names import name_problem

MAX_METADATA = 10  # key/value pairs an image may carry
MAX_KEY = 128
MAX_VALUE = 256


def check_pairs(metadata: dict[str, str]) -> None:
    """Refuse the whole request when one pair breaks the rules of keys and values (their number is the image's:
    its status says when it would carry too many)."""
    for key, value in metadata.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY:
            raise StoreError(f"The metadata key {key!r} is not 1 to {MAX_KEY} characters.",
                             "BadRequestImageMetadataKey")
        problem = name_problem(key)
        if problem:
            raise StoreError(f"The metadata key {key!r} {problem}.", "BadRequestImageMetadataKey")
        if not isinstance(value, str) or len(value) > MAX_VALUE or "\x00" in value:  # PostgreSQL keeps no NUL
            raise StoreError(f"The metadata value of {key!r} is not a text of at most {MAX_VALUE} characters "
                             "(without NUL).", "BadRequestImageMetadataValue")
