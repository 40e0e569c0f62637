"""Reader identity with a role on every event (issue 16), on SQLite and on PostgreSQL."""
from __future__ import annotations

import pytest

from postgres import pg_server, store_target  # noqa: F401
from radview.store import LabelStore, StoreError


def test_every_event_records_its_readers_role(store_target):
    with LabelStore(store_target, reader="alice") as s:
        assert s.role_of() == "reader" and s.readers() == {}
        a = s.set_label("XR/s1", "normal", level="study", space="mura")
        s.set_reader("dana", "adjudicator")
        s.set_reader("root", "admin")
        d = s.set_label("XR/s1", "abnormal", level="study", reader="dana", reason="other",
                        note="adjudicated")
        u = s.undo(d.id, reader="root")
        assert (a.role, d.role, u.role) == ("reader", "adjudicator", "admin")
        assert s.readers() == {"dana": "adjudicator", "root": "admin"}
        s.set_reader("dana", "reader")             # a role change applies to later events only
        later = s.set_label("XR/s2", "normal", level="study", reader="dana", space="mura")
        assert later.role == "reader" and s.correction(d.id).role == "adjudicator"
        assert [e.role for e in s.history()] == ["reader", "adjudicator", "admin", "reader"]
        with pytest.raises(ValueError, match="unknown reader role"):
            s.set_reader("eve", "boss")
        with pytest.raises(ValueError, match="non-empty"):
            s.set_reader("", "reader")
        with pytest.raises(StoreError, match="(?i)check constraint"):  # the schema refuses it too
            s._db.write(lambda c: c.execute(
                "INSERT INTO readers (name, role, time) VALUES ('x', 'boss', 't')"))


def test_imported_events_keep_their_role(store_target, tmp_path):
    with LabelStore(store_target, reader="alice") as s:
        s.set_reader("dana", "adjudicator")
        e = s.set_label("k", "chest", reader="dana")
        rec = {f: getattr(e, f) for f in ("uid", "level", "key", "kind", "old_value", "new_value",
                                           "reader", "time", "reason", "role")}
    with LabelStore(tmp_path / "other.sqlite") as t:
        assert t.import_events([rec]) == 1
        assert t.history()[0].role == "adjudicator"
