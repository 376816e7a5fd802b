"""HPOStudy (``hpo``): an Optuna search, one Job per trial, then a finish Job
(:class:`.controller.HPOStudyKind`)."""
