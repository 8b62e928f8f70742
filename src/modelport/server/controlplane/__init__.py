"""The control plane: the ``/v1/`` resource API (deployments today) and its background jobs."""
