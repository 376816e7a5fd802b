"""The ensemble's decision service (FastAPI + uvicorn): ``create_app`` in :mod:`.app`, the
``ensemble-serve`` trainer command in :mod:`.cli`."""
