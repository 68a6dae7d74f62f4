"""The rules of the shia-chatbot policy pack, one module per concern.

stack.py      which stack is judged (name, environment, config)
spec.py       what a rule is: metadata, level per environment, thresholds
resources.py  reading containers, env lists and the router config, unknown-safe
catalog.py    every rule, built for one stack

app_settings.py  DEBUG, log level, CORS/ALLOWED_HOSTS, rate limits
images.py        pinned images, allowed registries
naming.py        environment prefixes, environment cross-checks
exposure.py      published ports, Flower authentication
operability.py   healthchecks, restart policies, memory and log limits
hardening.py     privileges, host namespaces, sensitive mounts
credentials.py   service authentication, secret-looking env values
storage.py       protected volumes, backups
routing.py       TLS, blue/green slots
docker_host.py   how the Docker daemon is reached
"""
