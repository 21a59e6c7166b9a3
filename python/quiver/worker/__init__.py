"""The Python worker of quiver: ``python -m quiver.worker --id ID --connection unix:PATH``."""
