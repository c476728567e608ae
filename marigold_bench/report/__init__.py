"""From run directories to paper tables (:mod:`.tables`), plots (:mod:`.plots`), confidence
intervals and paired comparisons (:mod:`.stats`) and CI regression verdicts (:mod:`.regress`).
Run directories are read through :mod:`.rundir`."""
