"""TrainingRun (``tr``): one agent trained by one Job (:class:`.controller.TrainingRunKind`)."""
