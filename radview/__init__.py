"""radview: a desktop viewer, AI review and label-correction tool for radiographs.

This module holds the version only; it imports neither torch nor Qt.
"""

__version__ = "0.1.0"
