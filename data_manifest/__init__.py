"""Build manifests (YAML). `demo.yaml` is the embedded default."""
