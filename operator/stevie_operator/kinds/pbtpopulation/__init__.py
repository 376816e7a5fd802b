"""PBTPopulation (``pbt``): population-based training, one Job per member interval, then a
finish Job (:class:`.controller.PBTPopulationKind`)."""
