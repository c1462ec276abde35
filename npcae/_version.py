"""npcae's version, in a module of its own so that any module can import it without
importing the package's other modules (``pyproject.toml`` holds the same string; a test
checks that they agree)."""

__version__ = "0.1.0"
