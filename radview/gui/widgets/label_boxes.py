"""Box edits of the label panel (a mixin of LabelPanel): add, replace, delete, accept and reject a
box on the image a canvas shows, each one undoable command carrying the panel's reason, note,
reader and the model on screen.

Boxes always belong to an image: on a study-level item (a DICOM study, e.g. a plain DICOM folder
without the RSNA CSV) `image_key` names the image the canvas shows (a one-image study needs
none) and the box event is recorded at image level for it. Its label space is the panel's if that
has boxes, else the space of the model whose boxes are on screen (radview.spaces.model_space).
"""
from __future__ import annotations

from typing import Any

from radview.gui.undo import (AcceptBoxCommand, AddBoxCommand, DeleteBoxCommand, RejectBoxCommand,
                              ReplaceBoxCommand, push)
from radview.store import StoreError
from radview.types import Box


class BoxEdits:
    """Needs from the panel: store, key, level, space, model, model_version, reason, note,
    exclude, undo_stack, labelled, _study_views, _model_spaces, _reader_changed, _reset_reason,
    _show_error."""

    def add_box(self, box: Box, image_key: str | None = None) -> bool:
        return self._box_command(AddBoxCommand, box, image_key=image_key)

    def replace_box(self, old: Box, new: Box, image_key: str | None = None) -> bool:
        """A box moved, resized or relabelled on the canvas."""
        return self._box_command(ReplaceBoxCommand, old, new, image_key=image_key)

    def delete_box(self, box: Box, image_key: str | None = None) -> bool:
        return self._box_command(DeleteBoxCommand, box, image_key=image_key)

    def accept_box(self, predicted: Box, image_key: str | None = None) -> bool:
        return self._box_command(AcceptBoxCommand, predicted, image_key=image_key)

    def reject_box(self, predicted: Box, image_key: str | None = None) -> bool:
        return self._box_command(RejectBoxCommand, predicted, image_key=image_key)

    def box_target(self, image_key: str | None = None) -> str | None:
        """The image key a box edit goes to: the given image, else the current image item, else
        the only image of the current study; None when it cannot be told (say why)."""
        if self.key is None:
            return None
        if image_key:
            return image_key
        if self.level == "image":
            return self.key
        views = self._study_views.get(self.key, ())
        if len(views) == 1:
            return views[0]
        self._show_error(f"Study {self.key} has {len(views)} images: a box edit needs the image it is on")
        return None

    def _box_space(self) -> str | None:
        """The label space of a box edit: the panel's if it has boxes, else the space of the model
        whose boxes are on screen (a plain DICOM folder has no label space of its own)."""
        if self.space is not None and self.space.boxes:
            return self.space.name
        if self.model:
            if self.model not in self._model_spaces:
                from radview import spaces as label_spaces_
                from radview.models.registry import list_models

                info = next((m for m in list_models() if m.name == self.model and m.manifest), None)
                sp = label_spaces_.model_space(info.manifest) if info is not None else None
                self._model_spaces[self.model] = sp.name if sp is not None and sp.boxes else None
            if self._model_spaces[self.model]:
                return self._model_spaces[self.model]
        return self.space.name if self.space is not None else None

    def _box_command(self, cls: type, *args: Any, image_key: str | None = None) -> bool:
        if self.store is None:
            return False
        key = self.box_target(image_key)
        if key is None:
            return False
        self._reader_changed()
        meta = dict(reason=self.reason.currentData(), note=self.note.text().strip() or None,
                    model=self.model, model_version=self.model_version,
                    exclude_from_training=self.exclude.isChecked(), space=self._box_space())
        try:
            event = push(self.undo_stack, cls(self.store, key, *args, **meta))
        except (StoreError, ValueError) as exc:
            self._show_error(str(exc))
            return False
        self.note.clear()
        self._reset_reason()
        self.labelled.emit(event)
        return True
