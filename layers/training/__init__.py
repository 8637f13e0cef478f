"""The lifecycle's container image: Dockerfile + pinned requirements (see infra/constructs/lifecycle.py)."""
