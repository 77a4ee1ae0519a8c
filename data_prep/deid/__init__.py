"""De-identification: pattern and name detectors with their gates, national ID checksums, natasha's NER review,
known-value propagation, surrogates, and the evaluator on the labelled PII test set. `detectors_of`, `find_spans`
and `merge_spans` give the spans a record's redaction replaces, so a reviewer can see them."""

from data_prep.deid._evaluation import detectors_for, load_heldout, load_testset, score
from data_prep.deid._national_ids import fake_cn_resident, fake_iin, fake_inn, fake_oms, fake_snils
from data_prep.deid._ner import load_model
from data_prep.deid._records import STRUCTURED_IDENTIFIERS, deidentify, deidentify_many, detectors_of
from data_prep.deid._scan import find_spans
from data_prep.deid._spans import FIELD_SEPARATOR, PLACEHOLDERS, Span, merge_spans

__all__ = [
    "FIELD_SEPARATOR",
    "PLACEHOLDERS",
    "STRUCTURED_IDENTIFIERS",
    "Span",
    "deidentify",
    "deidentify_many",
    "detectors_for",
    "detectors_of",
    "fake_cn_resident",
    "fake_iin",
    "fake_inn",
    "fake_oms",
    "fake_snils",
    "find_spans",
    "load_heldout",
    "load_model",
    "load_testset",
    "merge_spans",
    "score",
]
