"""Widgets of the main window: study browser, thumbnails, tag browser, errors, AI panel, help."""
