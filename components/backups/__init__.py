"""The backup job: its container (backups.py), its image and scripts (image/),
and where copies go off the host (offsite.py)."""
