"""Networks: the ACE-format encoder and scene head, the marepo pose regressor, preprocessing, and
the shipped weights (``weights/``). May import: ``geometry``."""
