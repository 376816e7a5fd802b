"""What every kind shares: the Kind contract and the one reconcile loop (:mod:`.kind`,
:mod:`.controller`), plans and statuses (:mod:`.plan`, :mod:`.status`, :mod:`.resource`),
children and their pod template (:mod:`.children`, :mod:`.pods`), the Kubernetes API
(:mod:`.kube`), settings (:mod:`.config`), shared metrics (:mod:`.metrics`) and the kopf
registration of a kind (:mod:`.registration`). It imports no kind."""
