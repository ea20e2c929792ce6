"""Root filesystems: resolving a rootfs URI, id-shifted copies, per-container overlays."""
