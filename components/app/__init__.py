"""The app: a blue/green slot (slot.py) released by named steps (release.py,
scripts/), its environment (environment.py), the Celery worker and Flower (worker.py)."""
