"""One folder per kind, each on the framework: ``reconcile.py`` (the pure plan),
``children.py`` (its Jobs), ``controller.py`` (the Kind implementation: observe, persist,
record) and ``metrics.py`` (its own Prometheus families). Kinds never import each other;
:mod:`stevie_operator.registry` lists them."""
