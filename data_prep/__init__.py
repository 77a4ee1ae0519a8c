"""Turn clinic records into de-identified chat examples for fine-tuning MedGemma.

The flow is read → de-identify → make task examples → quality filter → split by patient;
``prepare`` runs it end to end and writes the data card.
"""
