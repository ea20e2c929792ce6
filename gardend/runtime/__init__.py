"""OCI runtime specs for containers and their processes."""
