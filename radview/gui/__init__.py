"""radview's desktop app: the ONLY package that imports PySide6.

`radview.gui.app.run(path, screenshot=None, model=None)` starts it. Importing this package
imports nothing heavy (no torch: models load on the executor thread, after the window shows).

Note: PySide6 6.12.0 on Python 3.11 returns None and True/False from C++ calls without taking a
reference (correct only where they are immortal, Python 3.12+), so after a few thousand paints
the interpreter aborts ("none_dealloc: deallocating None"). pyproject.toml therefore keeps
PySide6 below 6.12; tests/gui/test_pyside_refcounts.py fails if an installed build has the bug.
"""
