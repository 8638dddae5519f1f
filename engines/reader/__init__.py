"""The finding reader: what the engine reads in a chest radiograph, from pixels (issue 28)."""

from engines.reader.config import ReaderConfig
from engines.reader.reader import FindingReader, ReaderError

__all__ = ["FindingReader", "ReaderConfig", "ReaderError"]
