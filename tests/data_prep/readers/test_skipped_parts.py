"""HL7 v2 segments and C-CDA sections that no field comes from are counted as left unread, apart from records,
and code systems other than ICD-10 are kept under their own name."""

from __future__ import annotations

import json
from pathlib import Path

from data_prep.config import DataConfig, SourceConfig
from data_prep.prepare import prepare
from data_prep.readers import Skip, read_source
from data_prep.records import Record, Reject

ADT = "\r".join(
    [
        "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240312101500||ADT^A01|M7|P|2.5",
        "EVN|A01|20240312101500",
        "PID|1||RU-7^^^HOSP||Петров^Иван||19700101|M",
        "NK1|1|Петрова^Анна|SPO",
        "PV1|1|I|Терапия^1^1",
        "IN1|1|OMS|77",
        "DG1|1||195967001^Бронхиальная астма^SCT",
        "OBX|1|NM|718-7^Гемоглобин^LN||98|г/л|120-160|L|||F",
    ]
)
CCDA = """<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <recordTarget><patientRole><id extension="MRN-5" root="2.16.840.1.113883.19"/></patientRole></recordTarget>
  <component><structuredBody>
    <component><section><code code="10154-3"/><title>Chief complaint</title><text>Wheezing at night.</text>
    </section></component>
    <component><section><code code="11450-4"/><title>Problems</title><text/>
      <entry><observation><value xsi:type="CD" code="195967001" codeSystem="2.16.840.1.113883.6.96"/></observation>
      </entry></section></component>
    <component><section><code code="29762-2"/><title>Social history</title><text/></section></component>
    <component><section><code code="46240-8"/><title>Encounters</title></section></component>
  </structuredBody></component>
</ClinicalDocument>
"""


def test_hl7_segments_no_field_comes_from_are_left_unread_and_snomed_codes_keep_their_name(tmp_path: Path) -> None:
    path = tmp_path / "adt.hl7"
    path.write_text(ADT, encoding="utf-8")
    items: list[Record | Reject | Skip] = []
    for item in read_source(path, SourceConfig(path=str(path), format="auto", lang="ru"), items.append)[1]:
        items.append(item)
    [record] = [i for i in items if isinstance(i, Record)]
    assert record.fields["snomed"] == "195967001" and "icd10" not in record.fields
    assert [(s.what, s.location, s.part) for s in items if isinstance(s, Skip)] == [
        ("EVN", "adt.hl7:message 1 (line 1), line 2", True),
        ("NK1", "adt.hl7:message 1 (line 1), line 4", True),
        ("IN1", "adt.hl7:message 1 (line 1), line 6", True),
    ]
    card = prepare(DataConfig(sources=[{"path": str(path), "format": "auto", "lang": "ru"}]), tmp_path / "out")
    assert (card["records"]["in"], card["records"]["skipped"]) == (1, 0)
    assert card["left_unread"] == {"unread_segment (EVN)": 1, "unread_segment (IN1)": 1, "unread_segment (NK1)": 1}
    assert "Parts of records read but left out" in (tmp_path / "out" / "data_card.md").read_text(encoding="utf-8")
    assert (
        json.loads((tmp_path / "out" / "data_card.json").read_text(encoding="utf-8"))["sources"][0]["left_unread"]
        == card["left_unread"]
    )


def test_ccda_sections_no_field_comes_from_are_left_unread(tmp_path: Path) -> None:
    path = tmp_path / "doc.xml"
    path.write_text(CCDA, encoding="utf-8")
    items: list[Record | Reject | Skip] = []
    for item in read_source(path, SourceConfig(path=str(path), format="auto", lang="en"), items.append)[1]:
        items.append(item)
    [record] = [i for i in items if isinstance(i, Record)]
    assert record.fields["complaints"] == "Wheezing at night." and record.fields["snomed"] == "195967001"
    assert [(s.reason, s.what) for s in items if isinstance(s, Skip)] == [
        ("unread_section", "29762-2"),
        ("unread_section", "46240-8"),
    ]
