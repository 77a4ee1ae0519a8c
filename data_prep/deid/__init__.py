"""data_prep.deid._core."""
