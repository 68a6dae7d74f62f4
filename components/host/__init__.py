"""The stack's Docker host: its provider and steps (docker_host), the two networks
(networks), and the settings every container shares (containers)."""
