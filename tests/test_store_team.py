"""Team reading (issue 16) on SQLite and on PostgreSQL: projects, worklists (assign by count,
balanced, at random seeded, by dataset split; claim / release; progress), blinded reads,
consensus and adjudication (the final label is what review, retraining and export use; every
read is kept), concurrent corrections whose conflict shows in the history."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from postgres import append_only_errors, pg_server, raw_connection, store_target  # noqa: F401
from radview.store import LabelStore, plan_assignment
from radview.types import ImageRef, Label, ScanResult, Study, View

P = "wrist-2x"


@pytest.fixture
def store(store_target):
    s = LabelStore(store_target, reader="dana")
    s.set_reader("dana", "adjudicator")
    yield s
    s.close()


def _studies(n: int, split: str = "valid", stype: str = "XR_WRIST", start: int = 0) -> list[Study]:
    return [Study(f"{split}/{stype}/patient{i:05d}/study1_negative", patient=f"patient{i:05d}",
                  study_type=stype, split=split, layout="mura", space="mura",
                  label=Label("normal", source="mura-folder", space="mura"),
                  views=(View(ImageRef(f"/m/{split}/{stype}/{i}/image1.png")),))
            for i in range(start, start + n)]


def _project(store, keys, reads=2, **kw):
    store.create_project(P, reads=reads, space="mura", **kw)
    store.add_to_project(P, keys)


# ---------------------------------------------------------------------- planning (pure)
def test_plan_assignment_modes_are_balanced_capped_and_seeded():
    keys = [f"s{i}" for i in range(10)]
    plan = plan_assignment(keys, ["a", "b", "c", "d"], 2)
    assert sorted(len(v) for v in plan.values()) == [5, 5, 5, 5]     # 20 reads over 4 readers
    for k in keys:                                                   # 2 distinct readers each
        assert sum(k in v for v in plan.values()) == 2
    plan = plan_assignment(keys, ["a", "b"], 1, mode="count", count=3)
    assert plan == {"a": ["s0", "s1", "s2"], "b": ["s3", "s4", "s5"]}
    r1 = plan_assignment(keys, ["a", "b"], 1, shuffle=True, seed=7)
    assert r1 == plan_assignment(keys, ["a", "b"], 1, shuffle=True, seed=7)
    assert r1 != plan_assignment(keys, ["a", "b"], 1, shuffle=True, seed=8)
    assert sorted(r1["a"] + r1["b"]) == sorted(keys)
    done = plan_assignment(keys, ["a", "b"], 2, existing={k: {"a", "b"} for k in keys[:8]})
    assert done == {"a": ["s8", "s9"], "b": ["s8", "s9"]}
    with pytest.raises(ValueError, match="needs a count"):
        plan_assignment(keys, ["a"], 1, mode="count")
    with pytest.raises(ValueError, match="no readers"):
        plan_assignment(keys, [], 1)


# ---------------------------------------------------------------------- projects, worklists
def test_projects_need_a_lead_and_are_listed(store):
    with pytest.raises(PermissionError, match="alice has role 'reader'"):
        store.create_project("x", reader="alice")
    p = store.create_project(P, reads=3, blinded=True, hide_model=False, space="mura")
    assert (p.reads, p.blinded, p.hide_model, p.creator) == (3, True, False, "dana")
    with pytest.raises(ValueError, match="exists already"):
        store.create_project(P)
    assert store.create_project(P, reads=2, replace=True).reads == 2
    assert [x.name for x in store.projects()] == [P]
    with pytest.raises(ValueError, match="no project 'nope'.*wrist-2x"):
        store.project("nope")


def test_assign_by_split_study_type_count_and_random(store):
    valid, train = _studies(6, "valid"), _studies(4, "train", start=10)
    elbow = _studies(2, "valid", "XR_ELBOW", start=20)
    store.record_scan(ScanResult("/m", tuple(valid + train + elbow)))
    store.create_project(P, reads=2, space="mura")
    assert store.add_to_project(P, split="valid", study_type="XR_WRIST") == 6   # by dataset split
    assert store.add_to_project(P, split="valid", study_type="XR_WRIST") == 0   # only grows
    assert set(store.project_items(P)) == {s.key for s in valid}
    res = store.assign(P, ["alice", "bob", "carol"])                           # balanced
    assert res.total == 12 and res.unfilled == ()
    assert sorted(len(v) for v in res.assigned.values()) == [4, 4, 4]
    again = store.assign(P, ["alice", "bob", "carol"])                         # all have 2 readers
    assert again.total == 0
    assert store.add_to_project(P, split="train") == 4
    got = store.assign(P, ["erin"], mode="count", count=3, shuffle=True, seed=1, split="train")
    assert len(got.assigned["erin"]) == 3 and set(got.assigned["erin"]) <= {s.key for s in train}
    assert len(got.unfilled) == 4                   # reads=2, only erin: every train item short
    with pytest.raises(PermissionError):
        store.assign(P, ["alice"], reader="alice")
    with pytest.raises(ValueError, match="not in project"):
        store.assign(P, ["alice"], keys=[elbow[0].key])


def test_claim_release_progress_and_blinded_worklists(store):
    keys = [s.key for s in _studies(3)]
    _project(store, keys)
    store.assign(P, ["alice"], keys=keys[:2])
    assert [w.key for w in store.worklist(P, "alice")] == keys[:2]
    assert store.claim(P, reader="bob") == keys[0]          # first item short of readers
    assert store.claim(P, keys[2], reader="bob") == keys[2]
    with pytest.raises(ValueError, match="already"):
        store.claim(P, keys[2], reader="bob")
    assert store.claim(P, reader="carol") == keys[1]
    with pytest.raises(ValueError, match="all its 2 readers"):
        store.claim(P, keys[0], reader="carol")
    store.record_read(P, keys[0], "normal", reader="alice")
    with pytest.raises(ValueError, match="has read"):
        store.release(P, keys[0], reader="alice")
    store.release(P, keys[1], reader="alice")               # back to the pool
    assert [w.key for w in store.worklist(P, "alice")] == [keys[0]]
    with pytest.raises(PermissionError):                    # a reader cannot release others'
        store.release(P, keys[0], reader="bob", by="alice")
    store.release(P, keys[2], reader="bob", by="dana", note="reassigned")
    assert store.claim(P, reader="erin") == keys[1]
    prog = {p.reader: p.text for p in store.progress(P, viewer="dana")}
    assert prog == {"alice": "1/1 read", "bob": "0/1 read", "carol": "0/1 read", "erin": "0/1 read"}
    assert [p.reader for p in store.progress(P, viewer="alice")] == ["alice"]   # blinded
    with raw_connection(store) as conn, pytest.raises(append_only_errors(store)):
        conn.execute("DELETE FROM worklist_events")


def test_two_readers_claiming_at_once_never_exceed_the_reads(store_target):
    with LabelStore(store_target, reader="dana") as s:
        s.set_reader("dana", "admin")
        s.create_project(P, reads=1)
        s.add_to_project(P, ["only"])
    stores = [LabelStore(store_target, reader=n) for n in ("alice", "bob", "carol")]
    go, got = threading.Barrier(3), {}

    def work(st):
        go.wait()
        got[st.reader] = st.claim(P)
    ts = [threading.Thread(target=work, args=(st,)) for st in stores]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(got.values(), key=str) == [None, None, "only"]
    for st in stores:
        st.close()


# ---------------------------------------------------------------------- blinded reads
def test_blinded_reads_consensus_adjudication_and_what_everyone_sees(store):
    from radview.review.collect import store_overrides

    studies = _studies(3)
    store.record_scan(ScanResult("/m", tuple(studies)))
    keys = [s.key for s in studies]
    _project(store, keys)
    store.assign(P, ["alice", "bob"])
    assert store.view_policy(P, "alice").blinded and not store.view_policy(P, "alice").model
    assert not store.view_policy(P, "dana").blinded
    a0 = store.record_read(P, keys[0], "abnormal", reader="alice", note="subtle")
    assert (a0.role, a0.model_shown, a0.others_shown) == ("reader", False, False)
    # bob sees neither alice's read nor that the study was read; dana sees it
    assert store.reads(P, keys[0], viewer="bob") == []
    st_b = store.item_status(P, keys[0], viewer="bob")
    assert (st_b.status, st_b.n_reads, st_b.reads, st_b.final) == ("open", 0, (), None)
    assert store.item_status(P, keys[0], viewer="dana").n_reads == 1
    assert store.label(keys[0], "study").value == "normal"   # a read is not a label
    assert store.pending() == []                               # ... nor a correction
    with pytest.raises(ValueError, match="waits until all reads"):
        store.adjudicate(P, keys[0], "abnormal", note="early")
    # agreement -> the consensus is the final label, appended once
    store.record_read(P, keys[0], "abnormal", reader="bob")
    st = store.item_status(P, keys[0], viewer="dana")
    assert (st.status, st.final, st.final_by) == ("final", "abnormal", "consensus")
    assert store.label(keys[0], "study").value == "abnormal"
    with pytest.raises(ValueError, match="final label"):
        store.record_read(P, keys[0], "normal", reader="alice")
    # disagreement -> the adjudication queue -> the adjudicator's final label with a reason
    store.record_read(P, keys[1], "normal", reader="alice")
    store.record_read(P, keys[1], "abnormal", reader="alice")    # alice changes her mind
    store.record_read(P, keys[1], "normal", reader="bob")
    [q] = store.disputed(P, viewer="dana")
    assert q.key == keys[1] and {(r.reader, r.value) for r in q.reads} == {("alice", "abnormal"),
                                                                           ("bob", "normal")}
    assert store.item_status(P, keys[1], viewer="alice").status == "read"   # never 'disputed'
    with pytest.raises(PermissionError):
        store.disputed(P, viewer="alice")
    with pytest.raises(PermissionError):
        store.adjudicate(P, keys[1], "normal", note="mine", reader="alice")
    with pytest.raises(ValueError, match="reason"):
        store.adjudicate(P, keys[1], "normal", note="  ")
    with pytest.raises(ValueError, match="not in its label space"):
        store.adjudicate(P, keys[1], "fracture", note="x")
    final = store.adjudicate(P, keys[1], "abnormal", note="cortical break on the lateral view",
                             model="mura-lite", model_version="3", model_output="abnormal")
    assert (final.reader, final.role, final.project, final.reason) == ("dana", "adjudicator", P, "other")
    assert store.disputed(P, viewer="dana") == []
    st = store.item_status(P, keys[1], viewer="dana")
    assert (st.status, st.final_by, st.final_reader) == ("final", "adjudication", "dana")
    # every read is kept (5 so far, the superseded ones too); reads are append-only
    assert len(store.read_log(P)) == 5 and len(store.reads(P, viewer="dana")) == 4
    with raw_connection(store) as conn, pytest.raises(append_only_errors(store)):
        conn.execute("UPDATE reads SET value = 'normal'")
    # the final labels are what review, retraining and export use
    overrides, corrected = store_overrides(store, studies)
    assert overrides[keys[1]].value == "abnormal" and corrected[keys[1]] == "dana"
    assert overrides[keys[0]].value == "abnormal" and overrides[keys[2]].value == "normal"
    assert {e.key for e in store.pending()} == {keys[0], keys[1]}
    assert all(e.project == P for e in store.pending())
    # undoing a final label sends the item back to the adjudication queue
    store.undo(final.id)
    assert [s.key for s in store.disputed(P, viewer="dana")] == [keys[1]]
    assert store.label(keys[1], "study").value == "normal"


def test_json_export_has_reader_role_project_and_the_reads(store):
    from radview.export.writers import iter_json, _drain

    keys = [s.key for s in _studies(2)]
    _project(store, keys)
    store.assign(P, ["alice", "bob"])
    store.record_read(P, keys[0], "normal", reader="alice")
    store.record_read(P, keys[0], "abnormal", reader="bob")
    store.adjudicate(P, keys[0], "abnormal", note="visible fracture")
    store.set_label(keys[1], "normal", level="study", space="mura", reader="erin")
    text, _n, _skipped = _drain(iter_json(store))
    doc = json.loads(text)
    labels = {d["key"]: d for d in doc["labels"]}
    assert (labels[keys[0]]["reader"], labels[keys[0]]["role"], labels[keys[0]]["project"]) == (
        "dana", "adjudicator", P)
    assert (labels[keys[1]]["reader"], labels[keys[1]]["role"]) == ("erin", "reader")
    assert [(e["role"], e["project"]) for e in doc["corrections"]] == [("adjudicator", P), ("reader", "")]
    assert {(r["reader"], r["value"], r["role"]) for r in doc["reads"]} == {
        ("alice", "normal", "reader"), ("bob", "abnormal", "reader")}
    assert doc["projects"][0]["name"] == P and doc["projects"][0]["reads"] == 2


def test_two_blinded_readers_reading_at_the_same_moment_both_kept_one_final(store_target):
    with LabelStore(store_target, reader="dana") as s:
        s.set_reader("dana", "admin")
        s.create_project(P, reads=2, space="mura")
        s.add_to_project(P, ["XR/s1"])
        s.assign(P, ["alice", "bob"])
    a, b = LabelStore(store_target, reader="alice"), LabelStore(store_target, reader="bob")
    go = threading.Barrier(2)

    def work(st):
        go.wait()
        st.record_read(P, "XR/s1", "abnormal")
    ts = [threading.Thread(target=work, args=(st,)) for st in (a, b)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert {r.reader for r in a.read_log(P)} == {"alice", "bob"}
    finals = [e for e in a.history("XR/s1", "study") if e.project == P]
    assert len(finals) == 1 and finals[0].new_value == "abnormal"
    a.close()
    b.close()


# ---------------------------------------------------------------------- concurrency
def test_concurrent_corrections_both_kept_and_the_conflict_is_in_the_history(store_target):
    a, b = LabelStore(store_target, reader="alice"), LabelStore(store_target, reader="bob")
    a.set_source_labels({"XR/s1": Label("normal", source="mura-csv", space="mura")}, level="study")
    seen_a = a.state("XR/s1", "study").newest_event_id      # both open the study: nothing yet
    seen_b = b.state("XR/s1", "study").newest_event_id
    assert seen_a == seen_b == 0
    go, out = threading.Barrier(2), {}

    def work(st, value, seen):
        go.wait()
        out[st.reader] = st.set_label("XR/s1", value, level="study", seen=seen)
    ts = [threading.Thread(target=work, args=(a, "abnormal", seen_a)),
          threading.Thread(target=work, args=(b, "normal", seen_b))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    first, second = a.history("XR/s1", "study")
    assert {first.reader, second.reader} == {"alice", "bob"}          # nothing lost
    assert first.conflict_with is None and second.conflict_with == first.id
    assert second.old_value == first.new_value                        # the later saw the earlier
    [(ev, other)] = b.conflicts("XR/s1", "study")
    assert (ev.id, other.id) == (second.id, first.id)
    assert a.label("XR/s1", "study").value == second.new_value
    # a reader who had seen the latest event, or who overwrites their own, is no conflict
    third = a.set_label("XR/s1", "abnormal", level="study",
                        seen=a.state("XR/s1", "study").newest_event_id)
    mine = a.set_label("XR/s1", "normal", level="study", seen=second.id)
    assert third.conflict_with is None and mine.conflict_with is None
    assert len(a.conflicts()) == 1
    a.close()
    b.close()


def test_project_agreement_per_study_type_against_scikit_learn(store):
    sk = pytest.importorskip("sklearn.metrics")
    from radview.review.agreement import project_agreement, team_agreement_dict

    studies = _studies(8) + _studies(8, stype="XR_ELBOW", start=100)
    store.record_scan(ScanResult("/m", tuple(studies)))
    keys = [s.key for s in studies]
    _project(store, keys, reads=3)
    store.assign(P, ["alice", "bob", "carol"])
    rng = __import__("random").Random(5)
    reads = {r: {k: rng.choice(["normal", "abnormal"]) for k in keys} for r in ("alice", "bob", "carol")}
    for r, per in reads.items():
        for k, v in per.items():
            store.record_read(P, k, v, reader=r)
    for s in store.disputed(P):
        store.adjudicate(P, s.key, reads["alice"][s.key], note="sided with alice")
    model = {k: "abnormal" for k in keys[::2]} | {k: "normal" for k in keys[1::2]}
    t = project_agreement(store, P, model=model, n_boot=200)
    assert t.headline.statistic == "fleiss" and t.headline.n_items == 16
    assert t.vs_final["alice"].value == pytest.approx(1.0)
    for stype in ("XR_WRIST", "XR_ELBOW"):
        ks = [s.key for s in studies if s.study_type == stype]
        sub = t.by_type[stype]
        got = sub.inter.pairs[("bob", "carol")].value
        want = sk.cohen_kappa_score([reads["bob"][k] for k in ks], [reads["carol"][k] for k in ks],
                                    labels=["normal", "abnormal"])
        assert got == pytest.approx(want, abs=1e-9) or (np.isnan(got) and np.isnan(want))
        want_m = sk.cohen_kappa_score([reads["carol"][k] for k in ks], [model[k] for k in ks],
                                      labels=["normal", "abnormal"])
        assert sub.vs_model["carol"].value == pytest.approx(want_m, abs=1e-9)
    d = team_agreement_dict(t)
    json.dumps(d, allow_nan=False)                          # the review's JSON
    assert set(d["by_study_type"]) == {"XR_WRIST", "XR_ELBOW"} and d["fleiss"]["n_items"] == 16


def test_reader_identity_default_is_radview_reader_then_the_os_user(tmp_path, monkeypatch):
    from radview.store import default_reader

    monkeypatch.delenv("RADVIEW_READER", raising=False)
    os_user = default_reader()
    assert os_user and os_user != "dr_env"
    monkeypatch.setenv("RADVIEW_READER", "dr_env")
    with LabelStore(tmp_path / "x.sqlite") as s:
        assert s.reader == "dr_env" and s.role_of() == "reader"   # role: the store's, default reader
        assert s.set_label("k", "chest").reader == "dr_env"
