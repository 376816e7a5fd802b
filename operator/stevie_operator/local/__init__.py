"""``stevie run``: the operator's own reconcile loop with no cluster. An in-memory API
(:mod:`.cluster`) stands in for the API server, and a launcher (:mod:`.launcher`) runs each
Job's container command as a local process that reports Job-shaped status."""
