"""Stevie's operator: the kopf entry point (:mod:`.app`), the ``stevie`` CLI (:mod:`.cli`),
one framework every kind runs on (:mod:`.framework`), one controller per kind
(:mod:`.kinds`) and the local runner behind ``stevie run`` (:mod:`.local`)."""
