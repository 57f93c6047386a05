"""THE benchmark: one ``test_<pillar>.py`` per pillar, run with ``pytest suites/``."""
