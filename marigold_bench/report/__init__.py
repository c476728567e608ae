"""From run directories to paper tables (:mod:`.tables`), plots (:mod:`.plots`), confidence
intervals and paired comparisons (:mod:`.stats`), CI regression verdicts (:mod:`.regress`),
leaderboards (:mod:`.leaderboard`) and protocol-sensitivity tables (:mod:`.sensitivity`).
Run directories are read through :mod:`marigold_bench.eval.rundir` (the format's writer and
reader; :mod:`.rundir` keeps the names report modules import). Nothing here runs a model or a
scoring loop: ``tests/test_layering.py`` checks it."""
