"""Priors: pairing a patient's studies and hanging them (current left, prior right, PA/LAT)."""
from __future__ import annotations

import numpy as np

from radview.io import scan
from radview.io.dicom import read_header
from radview.priors import StudyInfo, ViewInfo, by_patient, hang, hanging_order, norm_date, priors_of, study_info
from tests.dicom_factory import write_dicom


def S(key, pid, date="", time="", issuer="", views=()):
    return StudyInfo(key=key, patient_id=pid, date=date, time=time, issuer=issuer,
                     views=tuple(ViewInfo(f"{key}/{i}", vp, lat, i) for i, (vp, lat) in enumerate(views)))


def test_priors_pair_the_same_patient_most_recent_first():
    cur = S("c", "P1", "20240310")
    studies = [cur, S("a", "P1", "20230101"), S("b", "P1", "20240301"), S("x", "P2", "20240301"),
               S("later", "P1", "20250101"), S("nodate", "P1"), S("noid", ""), S("same", "P1", "20240310")]
    got = priors_of(cur, studies)
    assert [(p.study.key, p.relation, p.days) for p in got] == [
        ("b", "prior", 9), ("a", "prior", 434), ("same", "same day", 0), ("later", "later", -297),
        ("nodate", "undated", None)]


def test_empty_ids_and_other_issuers_never_pair():
    assert priors_of(S("c", ""), [S("d", "")]) == []
    assert priors_of(S("c", "7", issuer="HOSP-A"), [S("d", "7", issuer="HOSP-B")]) == []
    assert [p.study.key for p in priors_of(S("c", "7", issuer="HOSP-A"), [S("d", "7")])] == ["d"]


def test_same_day_studies_order_by_time():
    cur = S("c", "P", "20240101", "120000")
    got = priors_of(cur, [S("m", "P", "20240101", "080000"), S("e", "P", "20240101", "180000")])
    assert [(p.study.key, p.relation) for p in got] == [("m", "prior"), ("e", "later")]


def test_by_patient_newest_first():
    g = by_patient([S("a", "P", "20200101"), S("b", "P", "20220101"), S("c", "P"), S("d", "Q", "20200101"),
                    S("e", "")])
    assert {k: [s.key for s in v] for k, v in g.items()} == {"P": ["b", "a", "c"], "Q": ["d"]}


def test_hanging_order_is_pa_then_lateral():
    views = [ViewInfo("lat", "LL"), ViewInfo("ap", "AP"), ViewInfo("x", ""), ViewInfo("pa", "PA"),
             ViewInfo("obl", "RAO")]
    assert [v.key for v in hanging_order(views)] == ["pa", "ap", "lat", "obl", "x"]


def test_hang_current_left_prior_right_matching_projections():
    cur = S("c", "P", "20240301", views=[("LL", ""), ("PA", "")])
    pri = S("p", "P", "20230301", views=[("PA", ""), ("AP", ""), ("LATERAL", "")])
    h = hang(cur, pri)
    assert h.columns == 2
    rows = [(a.view_position if a else None, b.view_position if b else None) for a, b in h.rows]
    assert rows == [("PA", "PA"), (None, "AP"), ("LL", "LATERAL")]
    alone = hang(cur)
    assert alone.columns == 1 and [a.view_position for a, _ in alone.rows] == ["PA", "LL"]


def test_hang_pairs_laterality_first():
    cur = S("c", "P", views=[("CC", "L"), ("CC", "R")])
    pri = S("p", "P", views=[("CC", "L"), ("CC", "R")])
    rows = [(a.laterality, b.laterality) for a, b in hang(cur, pri).rows]
    assert rows == [("R", "R"), ("L", "L")]


def test_norm_date():
    assert norm_date("20240102") == "20240102" and norm_date("2024.01.02") == "20240102"
    assert norm_date("2024-01-02") == "20240102" and norm_date("") == "" and norm_date("20241399") == ""


def test_priors_from_a_scanned_folder(tmp_path):
    """Real DICOM files through io.scan: the study records plus the header of each view."""
    px = np.zeros((16, 16), np.uint16)
    old, new, other = "1.2.3.1", "1.2.3.2", "1.2.3.3"
    write_dicom(tmp_path / "a/pa.dcm", px, study_uid=old, patient_id="PID7", StudyDate="20220105", ViewPosition="PA")
    write_dicom(tmp_path / "b/pa.dcm", px, study_uid=new, patient_id="PID7", StudyDate="20240105", ViewPosition="PA")
    write_dicom(tmp_path / "b/lat.dcm", px, study_uid=new, patient_id="PID7", StudyDate="20240105",
                ViewPosition="LL", instance=2, ImageLaterality="L", StudyTime="101500")
    write_dicom(tmp_path / "c/pa.dcm", px, study_uid=other, patient_id="PID8", StudyDate="20230105", ViewPosition="PA")
    result = scan(tmp_path)
    infos = [study_info(s, header=lambda key: read_header(key.split("#")[0])) for s in result.studies]
    cur = next(i for i in infos if i.key == new)
    got = priors_of(cur, infos)
    assert [(p.study.key, p.relation, p.study.date) for p in got] == [(old, "prior", "20220105")]
    assert {v.view_position: v.laterality for v in cur.views} == {"PA": "", "LL": "L"}
    h = hang(cur, got[0].study)
    assert [(a and a.view_position, b and b.view_position) for a, b in h.rows] == [("PA", "PA"), ("LL", None)]
