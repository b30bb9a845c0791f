"""Files that local mode installs into Triton's backend directory (see kubevision.local.services.triton)."""
