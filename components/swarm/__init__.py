"""Runtime `swarm`: the stack's nodes (role labels), a container's settings as a Swarm service,
and generated secrets as Swarm secrets (docs/swarm.md)."""
