"""Regenerate the canonical fixtures: ``python -m npcae.reference.regenerate [FOLDER]``.

Writing into the package (no FOLDER) changes the pinned files: the tests in
``tests/test_reference.py`` then say which values moved, and their pins must be
updated in the same change.
"""
import sys

from ._canonical import write_canonical_fixtures

if __name__ == "__main__":
    for path in write_canonical_fixtures(sys.argv[1] if len(sys.argv) > 1 else None):
        print(f"{path}  {path.stat().st_size} bytes")
