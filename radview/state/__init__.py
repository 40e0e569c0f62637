"""Qt-free view state (napari's ViewerModel shape): what the screen shows, with one event per
field. The GUI's canvases and panels subscribe and redraw what changed; tests drive it
without a window."""
from radview.state.events import Emitter, Events
from radview.state.link import FIT, Framing, row_groups
from radview.state.view_state import (
    CAM_MAX_SIDE,
    IDENTITY,
    Geometry,
    Overlays,
    ViewState,
    compact_cam,
    grid_shape,
    orientation_text,
)

__all__ = ["CAM_MAX_SIDE", "FIT", "IDENTITY", "Emitter", "Events", "Framing", "Geometry", "Overlays",
           "ViewState", "compact_cam", "grid_shape", "orientation_text", "row_groups"]
