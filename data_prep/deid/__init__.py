"""De-identification: pattern and name detectors with their gates, national ID checksums, natasha's NER review,
known-value propagation, surrogates, and the evaluator on the labelled PII test set."""

from data_prep.deid._evaluation import detectors_for, load_heldout, load_testset, score
from data_prep.deid._national_ids import fake_cn_resident, fake_iin, fake_inn, fake_oms, fake_snils
from data_prep.deid._ner import load_model
from data_prep.deid._records import STRUCTURED_IDENTIFIERS, deidentify, deidentify_many

__all__ = [
    "STRUCTURED_IDENTIFIERS",
    "deidentify",
    "deidentify_many",
    "detectors_for",
    "fake_cn_resident",
    "fake_iin",
    "fake_inn",
    "fake_oms",
    "fake_snils",
    "load_heldout",
    "load_model",
    "load_testset",
    "score",
]
