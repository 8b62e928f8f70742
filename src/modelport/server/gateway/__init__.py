"""The gateway: routes requests for deployments to in-process variants or model-server replicas."""
