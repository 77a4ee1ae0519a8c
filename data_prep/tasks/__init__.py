"""data_prep.tasks._build."""
