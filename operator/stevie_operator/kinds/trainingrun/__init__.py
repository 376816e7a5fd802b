"""TrainingRun (``strun``): one agent trained by one Job (:class:`.controller.TrainingRunKind`)."""
