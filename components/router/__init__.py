"""nginx, the one container that publishes ports (router.py), its config rendered
from typed data (nginx_config.py, templates/) and applied by scripts/router-apply.sh."""
