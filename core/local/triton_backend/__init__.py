"""Files that local mode installs into Triton's backend directory (see kubevision.core.local.services.triton)."""
